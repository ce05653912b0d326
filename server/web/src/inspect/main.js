// The inspector: this node and its rooms from /api/rooms, one room's connections
// from /api/rooms/{room}, and that room's awareness states and document, read by
// joining the room with a y-websocket provider that sets no awareness state of
// its own (nobody sees the inspector as a person). Polls at most once a second;
// renders of the live document and awareness are throttled to once a second too.
// The room's comment counts come from its threads, counted again (at most once a
// second) when its event feed says a thread or comment changed; the feed's latest
// events are listed as they come.

import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'
import { cleanRoomName, httpUrl, wsServerUrl } from '../shared/config.js'
import { followRoom, roomPath } from '../shared/feed.js'
import { displayName } from '../shared/names.js'
import { throttled } from '../shared/throttle.js'
import { bearer, tokenFor } from '../shared/tokens.js'
import { docToJSON, renderTree } from './doctree.js'

const INTERVAL = 1000
const COUNT_PAGES = 10 // threads are counted 100 a page, up to 1,000
const EVENTS_SHOWN = 20
const $ = (id) => document.getElementById(id)
const status = $('status')

let token = null
let selected = null // {name, doc, provider}
const collapsed = new Set()

const setStatus = (state, text) => {
  status.dataset.state = state
  status.textContent = text
}

const bytes = (n) => (n == null ? '—' : n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`)
const seconds = (s) => (s == null ? '—' : s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${(s / 3600).toFixed(1)} h`)
const cell = (content, className = '') => {
  const td = document.createElement('td')
  if (className) td.className = className
  if (content instanceof Node) td.append(content)
  else td.textContent = content
  return td
}
const facts = (dl, pairs) => dl.replaceChildren(...pairs.flatMap(([term, value, state]) => {
  const dt = Object.assign(document.createElement('dt'), { textContent: term })
  const dd = Object.assign(document.createElement('dd'), { textContent: value })
  if (state) dd.dataset.state = state
  return [dt, dd]
}))

/** GET an /api path as JSON; on 401/403 ask for an owner token once and retry. */
const api = async (path) => {
  for (let attempt = 0; attempt < 2; attempt++) {
    const response = await fetch(httpUrl(path), { headers: bearer(token), cache: 'no-store' })
    if (response.ok) return response.json()
    if ((response.status === 401 || response.status === 403) && attempt === 0) {
      const { error } = await response.json().catch(() => ({}))
      token = await tokenFor('owner', { refresh: true, reason: `The server answered ${response.status} (${error ?? 'refused'}): the inspector needs a token whose rooms claim maps "*" to "owner".` })
      continue
    }
    throw new Error(`${path}: HTTP ${response.status}`)
  }
}

// ---- the node and its rooms -------------------------------------------------------
const renderNode = ({ node, rooms, connections }) => {
  const problems = node.problems.length ? node.problems.join('; ') : 'none'
  facts($('node'), [
    ['Node', node.id],
    ['Version', `${node.version} (pid ${node.pid})`],
    ['Up', seconds(node.uptime_seconds)],
    ['Ready', node.ready ? 'yes' : `no: ${problems}`, node.ready ? 'ok' : 'bad'],
    ['Store', node.store_healthy ? 'healthy' : 'writes failing, retrying', node.store_healthy ? 'ok' : 'bad'],
    ['Uncommitted', bytes(node.pending_bytes)],
    ['Redis', node.redis ?? 'not used (single node)', node.redis === 'disconnected' ? 'bad' : node.redis ? 'ok' : ''],
    ['Connections', String(connections)],
    ['Rooms loaded', `${rooms.length}${node.loading.length ? ` (loading: ${node.loading.join(', ')})` : ''}`],
    ['Draining', node.draining ? 'yes' : 'no', node.draining ? 'bad' : '']
  ])
  const body = $('rooms').tBodies[0]
  body.replaceChildren(...rooms.sort((a, b) => b.clients - a.clients || a.name.localeCompare(b.name)).map((r) => {
    const tr = document.createElement('tr')
    tr.dataset.room = r.name
    if (selected?.name === r.name) tr.setAttribute('aria-current', 'true')
    const open = Object.assign(document.createElement('a'), { href: `inspect?room=${encodeURIComponent(r.name)}`, textContent: r.name })
    open.addEventListener('click', (e) => {
      e.preventDefault()
      selectRoom(r.name)
    })
    tr.append(
      cell(open),
      cell(String(r.clients), 'num'),
      cell(String(r.read_only), 'num'),
      cell(String(r.awareness), 'num'),
      cell(r.idle ? `idle, unloads in ${seconds(r.unload_in)}` : r.syncing ? `active (${r.syncing} syncing)` : 'active'),
      cell(bytes(r.pending_bytes), 'num')
    )
    return tr
  }))
  $('rooms-empty').hidden = rooms.length > 0
}

// ---- one room ---------------------------------------------------------------------
const renderRoom = (room) => {
  facts($('room-facts'), [
    ['Document', bytes(room.document_bytes)],
    ['Clients', `${room.clients} (${room.read_only} read-only, ${room.syncing} syncing)`],
    ['Presence states', String(room.awareness)],
    ['Uncommitted', bytes(room.pending_bytes)],
    ['Other nodes holding it', room.other_nodes == null ? 'unknown (bus did not answer)' : room.other_nodes.length ? room.other_nodes.join(', ') : 'none']
  ])
  $('connections').tBodies[0].replaceChildren(...room.connections.map((c) => {
    const tr = document.createElement('tr')
    tr.dataset.connection = c.id
    const who = c.name && c.name !== c.user ? `${c.name} (${c.user})` : c.user
    tr.append(
      cell(String(c.id), 'num'),
      cell(who ?? '—'),
      cell(c.read_only && c.role !== 'viewer' && c.role !== 'commenter' ? `${c.role}, read-only` : c.role),
      cell(c.client ?? '—'),
      cell(seconds(c.connected_seconds)),
      cell(c.synced ? 'yes' : 'no'),
      cell(`${c.queued_frames} frames, ${bytes(c.queued_bytes)}${c.closing ? ', closing' : ''}`)
    )
    return tr
  }))
}

const renderAwareness = () => {
  if (!selected) return
  const states = [...selected.provider.awareness.getStates()].filter(([client]) => client !== selected.doc.clientID)
  $('awareness').tBodies[0].replaceChildren(...states.sort((a, b) => a[0] - b[0]).map(([client, state]) => {
    const tr = document.createElement('tr')
    tr.dataset.client = client
    const { ysync, ...fields } = state
    const pre = (value) => Object.assign(document.createElement('pre'), { textContent: JSON.stringify(value, null, 1) })
    tr.append(cell(String(client), 'num'), cell(displayName(state) ?? '—'), cell(ysync ? pre(ysync) : '—'), cell(pre(fields)))
    return tr
  }))
}

const renderDocument = () => {
  if (!selected) return
  renderTree($('document'), docToJSON(selected.doc), collapsed)
  $('doc-status').textContent = selected.provider.synced ? '(live)' : '(loading…)'
}

// ---- comments and events of the room ---------------------------------------------------
const countComments = async () => {
  if (!selected) return
  const room = selected.name
  const counts = { open: 0, resolved: 0, comments: 0, more: false }
  let cursor = null
  try {
    for (let page = 0; page < COUNT_PAGES; page++) {
      const query = new URLSearchParams({ limit: '100', ...(cursor ? { cursor } : {}) })
      const { threads, nextCursor } = await api(`${roomPath(room)}/threads?${query}`)
      for (const t of threads) {
        counts[t.resolved ? 'resolved' : 'open']++
        counts.comments += t.comments.filter((c) => !c.deletedAt).length
      }
      cursor = nextCursor
      if (!cursor) break
    }
    counts.more = cursor !== null
  } catch (error) {
    if (selected?.name === room) facts($('comment-facts'), [['Comments', `cannot read them: ${error.message}`, 'bad']])
    return
  }
  if (selected?.name !== room) return
  const plus = counts.more ? '+' : ''
  facts($('comment-facts'), [
    ['Open threads', `${counts.open}${plus}`],
    ['Resolved threads', `${counts.resolved}${plus}`],
    ['Comments', `${counts.comments}${plus}`]
  ])
}

const showEvent = ({ type, data }) => {
  const summary = data?.data?.thread?.id ?? data?.data?.threadId ?? data?.data?.clientId ?? data?.data?.user ?? ''
  const li = document.createElement('li')
  li.dataset.type = type
  const at = Number.isFinite(data?.at) ? new Date(data.at * 1000) : new Date()
  li.append(
    Object.assign(document.createElement('time'), { textContent: at.toLocaleTimeString() }), ' ',
    Object.assign(document.createElement('code'), { textContent: type }),
    summary ? ` ${summary}` : ''
  )
  const list = $('events')
  list.prepend(li)
  while (list.children.length > EVENTS_SHOWN) list.lastChild.remove()
  $('events-empty').hidden = true
}

const selectRoom = (name) => {
  if (selected?.name === name) return
  if (selected) {
    selected.provider.destroy()
    selected.doc.destroy()
    selected.feed.close()
  }
  $('events').replaceChildren()
  $('events-empty').hidden = false
  $('comment-facts').replaceChildren()
  collapsed.clear()
  history.replaceState(null, '', `inspect?room=${encodeURIComponent(name)}`)
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(wsServerUrl(), name, doc, {
    connect: false,
    disableBc: true,
    params: token ? { token } : {}
  })
  // No presence of our own: the server and the other clients never see a state for us.
  provider.awareness.setLocalState(null)
  const countsLater = throttled(countComments, INTERVAL)
  const feed = followRoom(name, {
    token: () => token,
    onOpen: countsLater,
    onEvent: (event) => {
      showEvent(event)
      if (/^(thread|comment)\./.test(event.type) || event.type === 'reset') countsLater()
    }
  })
  selected = { name, doc, provider, feed, detail: null }
  const awarenessLater = throttled(renderAwareness, INTERVAL)
  const documentLater = throttled(renderDocument, INTERVAL)
  provider.awareness.on('change', awarenessLater)
  doc.on('update', documentLater)
  provider.on('sync', documentLater)
  provider.on('closed', async ({ code, reason }) => {
    if (code !== 4401) return setStatus('closed', `The room closed the inspector's connection: ${reason || code}`)
    token = await tokenFor('owner', { refresh: true, reason: `The server refused the token (${reason || code}).` })
    provider.params.token = token
    provider.connect()
  })
  $('room').hidden = false
  $('room-name').textContent = name
  renderAwareness()
  renderDocument()
  provider.connect()
}

// ---- the loop -----------------------------------------------------------------------
const refresh = async () => {
  const started = performance.now()
  try {
    renderNode(await api('api/rooms'))
    // A room's details only once its provider is synced: by then the room is loaded here.
    if (selected?.provider.synced) renderRoom(await api(`api/rooms/${selected.name.split('/').map(encodeURIComponent).join('/')}`))
    setStatus('synced', 'Live')
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`
  } catch (error) {
    setStatus('closed', `Cannot read the node: ${error.message}`)
  }
  setTimeout(refresh, Math.max(0, INTERVAL - (performance.now() - started)))
}

const start = async () => {
  token = await tokenFor('owner')
  const room = cleanRoomName(new URLSearchParams(location.search).get('room'))
  if (room) selectRoom(room)
  refresh()
  window.ysyncInspector = { get selected () { return selected } }
}

start()
