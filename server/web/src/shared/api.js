// The room's HTTP API as the demo calls it: JSON in and out, the current token,
// and an Error carrying the server's `error` text when it refuses.

import { httpUrl } from './config.js'
import { roomPath } from './feed.js'
import { bearer } from './tokens.js'

/** `call(method, path, body?)` against /api/rooms/{room}/{path}; null for 204. */
export const roomApi = (room, token) => async (method, path, body) => {
  const response = await fetch(httpUrl(`${roomPath(room)}/${path}`), {
    method,
    headers: { 'Content-Type': 'application/json', ...bearer(token()) },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store'
  })
  if (response.status === 204) return null
  const answer = await response.json().catch(() => ({}))
  if (!response.ok) throw new Error(answer.error ?? `HTTP ${response.status}`)
  return answer
}

/**
 * `work` run one at a time: a call while one runs asks for one more run after it
 * (so changes that came in meanwhile are not missed). Nothing runs while offline;
 * failures are left to `work` (or ignored: the next event retries).
 */
export const oneAtATime = (work) => {
  let running = null
  let again = false
  return () => {
    if (!navigator.onLine) return Promise.resolve()
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        try {
          await work()
        } catch {
          // Offline or refused: what is shown stays as it was.
        }
      } while (again)
      running = null
    })()
    return running
  }
}
