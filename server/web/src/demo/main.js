// The demo page: one room, one Y.Doc, one y-websocket provider; a canvas view and
// a text view on the same document, presence, connection status, share link.

import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'
import { cleanRoomName, config, wsServerUrl } from '../shared/config.js'
import { trackConnection } from '../shared/connection.js'
import { PALETTE } from '../shared/names.js'
import { subjectOf, tokenFor } from '../shared/tokens.js'
import { mountCanvas } from './canvas.js'
import { mountModules } from './modules.js'
import { mountPresence } from './presence.js'
import { mountText } from './text.js'

const DEFAULT_ROOM = 'demo'
const RECENT = 'ysync-demo-rooms'

const params = new URLSearchParams(location.search)
const room = cleanRoomName(params.get('room')) || DEFAULT_ROOM

const me = {
  name: localStorage.getItem('ysync-demo-name') || `Guest ${Math.floor(Math.random() * 900 + 100)}`,
  color: localStorage.getItem('ysync-demo-color') || PALETTE[Math.floor(Math.random() * PALETTE.length)]
}
localStorage.setItem('ysync-demo-name', me.name)
localStorage.setItem('ysync-demo-color', me.color)

const pickRoom = () => {
  const input = document.getElementById('room-input')
  input.value = room
  const recent = [room, ...JSON.parse(localStorage.getItem(RECENT) || '[]').filter((r) => r !== room)].slice(0, 8)
  localStorage.setItem(RECENT, JSON.stringify(recent))
  document.getElementById('recent-rooms').replaceChildren(...recent.map((r) => Object.assign(document.createElement('option'), { value: r })))
  document.getElementById('room-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const next = cleanRoomName(input.value)
    if (next) location.search = new URLSearchParams({ room: next }).toString()
  })
}

const shareLink = () => {
  const note = document.getElementById('share-note')
  document.getElementById('share').addEventListener('click', async () => {
    const url = new URL(location.pathname, location.href)
    url.search = new URLSearchParams({ room }).toString()
    note.hidden = false
    try {
      await navigator.clipboard.writeText(url.href)
      note.textContent = `Link copied: ${url.href}`
    } catch {
      note.textContent = `Share this link: ${url.href}`
    }
  })
}

const nameInput = (awareness) => {
  const input = document.getElementById('name-input')
  input.value = me.name
  input.addEventListener('change', () => {
    me.name = input.value.trim().slice(0, 40) || me.name
    input.value = me.name
    localStorage.setItem('ysync-demo-name', me.name)
    awareness.setLocalStateField('user', { name: me.name, color: me.color })
  })
}

const viewTabs = () => {
  const views = document.getElementById('views')
  for (const view of ['canvas', 'text']) {
    document.getElementById(`tab-${view}`).addEventListener('click', () => {
      views.dataset.view = view
      for (const other of ['canvas', 'text']) {
        document.getElementById(`tab-${other}`).setAttribute('aria-selected', String(other === view))
      }
    })
  }
}

const start = async () => {
  document.title = `${room} · ysync demo`
  pickRoom()
  shareLink()
  viewTabs()
  const token = await tokenFor('editor', { name: me.name })
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(wsServerUrl(), room, doc, {
    connect: false,
    // Every edit goes through the server, also between tabs of one browser.
    disableBc: true,
    params: token ? { token } : {}
  })
  const awareness = provider.awareness
  awareness.setLocalState({ user: { ...me }, cursor: null, selection: [], dragging: null })
  trackConnection(provider, document.getElementById('status'), { role: 'editor', name: () => me.name })
  nameInput(awareness)
  mountPresence({ doc, awareness, element: document.getElementById('presence') })
  // The token may be replaced (a refused one is asked for again): read it when used.
  const currentToken = () => provider.params.token ?? token
  // Who the server takes us for: with auth off everyone is `anonymous`; with a JWT, its `sub`.
  const myUserId = () => (config.auth === 'none' ? 'anonymous' : subjectOf(currentToken()))
  mountCanvas({ doc, awareness, me: () => (config.auth === 'none' ? null : myUserId()) })
  mountText({ doc, awareness })
  mountModules({ doc, provider, awareness, room, token: currentToken, me: myUserId, config })
  if (navigator.onLine) provider.connect()
  // For the browser console: ysyncDemo.doc.toJSON(), ysyncDemo.provider.
  window.ysyncDemo = { doc, provider, room }
}

start()
