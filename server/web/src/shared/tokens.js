// Tokens for servers with authentication on. In order: a token kept for this tab,
// one from the dev-token endpoint (only with `ysync serve --demo-dev-tokens`), or
// one the user pastes into the page's token dialog.

import { config, httpUrl } from './config.js'

const key = (role) => `ysync-token:${role}`

const fromDevEndpoint = async (role, name) => {
  const response = await fetch(httpUrl('demo/token'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ role, name })
  })
  if (!response.ok) throw new Error(`dev token: HTTP ${response.status}`)
  return (await response.json()).token
}

let asking = null // one dialog at a time, however many requests were refused

const fromDialog = (reason) => {
  asking ??= new Promise((resolve) => {
    const dialog = document.getElementById('token-dialog')
    const input = document.getElementById('token-input')
    if (reason) document.getElementById('token-reason').textContent = reason
    input.value = ''
    dialog.addEventListener('close', () => {
      asking = null
      resolve(input.value.trim())
    }, { once: true })
    dialog.showModal()
  })
  return asking
}

/**
 * A token for `role` ('editor' for the demo, 'owner' for the inspector), or null
 * when the server wants none. `refresh` drops the kept one first (it was refused).
 */
export const tokenFor = async (role, { name = '', refresh = false, reason = '' } = {}) => {
  if (refresh) sessionStorage.removeItem(key(role))
  else if (config.auth === 'none') return null
  let token = sessionStorage.getItem(key(role))
  if (!token) {
    token = config.devTokens ? await fromDevEndpoint(role, name) : await fromDialog(reason)
    sessionStorage.setItem(key(role), token)
  }
  return token
}

/** Authorization headers for /api requests. */
export const bearer = (token) => (token ? { Authorization: `Bearer ${token}` } : {})

/** A JWT's claims, unverified (the server checks them), or null. */
const claimsOf = (token) => {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))))
  } catch {
    return null
  }
}

/** The `sub` claim of a JWT (not verified: only to tell which reactions are ours), or null. */
export const subjectOf = (token) => {
  const sub = claimsOf(token)?.sub
  return typeof sub === 'string' ? sub : null
}

/**
 * The role a token grants in `room` by its `rooms` claim, exact room or "*" (not
 * verified: only to hide buttons the server would refuse), or null: no token, or
 * a pattern grant this does not read.
 */
export const roleIn = (token, room) => {
  const rooms = token ? claimsOf(token)?.rooms : null
  const role = rooms?.[room] ?? rooms?.['*']
  return typeof role === 'string' ? role : null
}
