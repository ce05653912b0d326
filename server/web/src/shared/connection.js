// Connection status of a y-websocket provider, shown in the header, and the
// browser's offline state: offline, the provider stops trying to connect (edits
// stay in the Y.Doc); back online it reconnects at once, and the sync handshake
// sends what was edited meanwhile (the server asks with its SyncStep1).

import { tokenFor } from './tokens.js'

const TEXT = {
  connecting: 'Connecting…',
  connected: 'Syncing…',
  synced: 'Connected',
  disconnected: 'Disconnected, reconnecting…',
  offline: 'Offline: edits are kept and merge when you reconnect'
}

export const trackConnection = (provider, element, { role, name = () => '' }) => {
  let state = 'connecting'
  const show = (next, text = TEXT[next]) => {
    state = next
    element.dataset.state = next
    element.textContent = text
  }
  provider.on('status', ({ status }) => {
    if (!navigator.onLine) return show('offline')
    show(status === 'connected' && provider.synced ? 'synced' : status)
  })
  provider.on('sync', (synced) => {
    if (synced && provider.wsconnected) show('synced')
  })
  // A close the provider will not retry (44xx): say why, and for 4401 get a new token.
  provider.on('closed', async ({ code, reason }) => {
    if (code === 4401) {
      show('closed', `Token refused: ${reason || code}`)
      provider.params.token = await tokenFor(role, { name: name(), refresh: true, reason: `The server refused the token (${reason || code}). Paste another one.` })
      provider.connect()
      return
    }
    show('closed', code === 4403 ? `No permission for this room (${reason || code})` : `Closed by the server: ${reason || code}`)
  })
  window.addEventListener('offline', () => {
    provider.disconnect()
    show('offline')
  })
  window.addEventListener('online', () => {
    show('connecting')
    provider.connect()
  })
  if (!navigator.onLine) show('offline')
  return { get state () { return state } }
}
