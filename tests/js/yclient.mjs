// A real Yjs client (yjs + y-websocket's WebsocketProvider) driven by the Python tests.
//
// Protocol: one JSON command per line on stdin, e.g. {"id": 1, "cmd": "connect", ...}.
// Every command gets exactly one reply line on stdout carrying the same "id":
//   {"id": 1, "ok": true, ...result fields}   or   {"id": 1, "error": "message"}.
// Lines without an "id" are unsolicited events: {"event": "status" | "sync" |
// "connection-close" | "closed" | "connection-error" | "permission-denied", ...}.
// Commands run concurrently: a pending wait_* never blocks later commands.
// One process holds one Y.Doc and one provider (destroy, then connect again for a new one).
//
// Commands (arguments -> reply fields besides id/ok); wait_* take timeout_ms (default 5000):
//   connect {url, room, params?, client_id?, autoconnect?=true, max_backoff_ms?,
//            resync_interval_ms?}                                -> {client_id, url}
//   wait_synced {}                                              -> {synced: true}
//   wait_connects {connects}      socket opened >= n times      -> {connects}
//   wait_close {count?=1}         server closed >= n sockets    -> {close, closes}
//   status {}  -> {client_id, wsconnected, wsconnecting, synced, should_connect, connects,
//                  closes: [{code, reason, was_clean}], last_close, local_closes,
//                  terminal_close: {code, reason} | null, permission_denied: [reason],
//                  connection_errors, unsuccessful_reconnects}
//   text_insert {name, index, value, attrs?}   text_delete {name, index, length}
//   map_set {name, key, value}   map_delete {name, key}
//   array_push {name, values}   array_insert {name, index, values}   array_delete {name, index, length?=1}
//   xml_append_element {name, tag, text?, attrs?}               (all edits reply {})
//   prosemirror_set {name, doc}  (ProseMirror JSON, basic schema, written by y-prosemirror
//                    into an empty fragment) -> {}   prosemirror_get {name} -> {doc}
//   state {names: {name: "text"|"map"|"array"|"xml"}}
//        -> {values: {name: value}, state_vector: b64, update: b64, client_id}
//   apply_update {update: b64}                                  -> {}
//   wait_for {name, kind, equals | length}                      -> {value}
//   awareness_set {state}   (null removes it)                   -> {client_id}
//   awareness_states {}                                         -> {client_id, states: {id: state}}
//   wait_awareness {client_id, present?=true, equals?} | {count} -> {states}
//   bulk_text_insert {name, count, char?="x"}                   -> {elapsed_ms, length}
//   relative_position {name, index, assoc?=0}  (text)  -> {position: b64 of Y.encodeRelativePosition}
//   absolute_position {position: b64}                  -> {index: number | null}
//   disconnect {}  reconnect {}  destroy {}  exit {}            -> {}

import * as readline from 'node:readline'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as authProtocol from 'y-protocols/auth'
import { prosemirrorJSONToYXmlFragment, yXmlFragmentToProsemirrorJSON } from 'y-prosemirror'
import { schema as basicSchema } from 'prosemirror-schema-basic'

// Node 20 has no global WebSocket; y-websocket reads it in its resyncInterval timer.
if (globalThis.WebSocket === undefined) globalThis.WebSocket = WebSocket

/** @type {Y.Doc | null} */
let doc = null
/** @type {WebsocketProvider | null} */
let provider = null
// What the provider has told us, for `status` and the wait_* commands.
let track = freshTrack()

function freshTrack () {
  return {
    closes: [], // every connection-close from the server: {code, reason, was_clean}
    localCloses: 0, // connection-close with a null event: disconnect() or the 30 s watchdog
    terminalClose: null, // the 'closed' event: a 44xx code, no automatic reconnect
    permissionDenied: [], // reasons from auth messages
    connects: 0, // how many times the socket opened
    errors: 0 // connection-error events
  }
}

const write = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const emitEvent = (event, fields = {}) => write({ event, ...fields })

// ---- waiting on events instead of sleeping --------------------------------------------------
// A waiter is re-checked whenever the doc, the awareness or the connection changes.

const waiters = new Set()

function poke () {
  for (const w of [...waiters]) w.check()
}

/**
 * Resolve with check()'s first non-undefined result; reject after timeoutMs with describe().
 * @param {() => any} check
 * @param {number} timeoutMs
 * @param {() => string} describe
 */
function waitUntil (check, timeoutMs, describe) {
  return new Promise((resolve, reject) => {
    const w = {
      fail: (err) => {
        finish()
        reject(err)
      },
      check: () => {
        let result
        try {
          result = check()
        } catch (err) {
          finish()
          reject(err)
          return
        }
        if (result !== undefined) {
          finish()
          resolve(result)
        }
      }
    }
    const timer = setTimeout(() => {
      finish()
      reject(new Error(`timeout after ${timeoutMs} ms: ${describe()}`))
    }, timeoutMs)
    const finish = () => {
      clearTimeout(timer)
      waiters.delete(w)
    }
    waiters.add(w)
    w.check()
  })
}

// ---- helpers ---------------------------------------------------------------------------------

function need (value, what) {
  if (value === undefined || value === null) throw new Error(`missing argument: ${what}`)
  return value
}

function requireDoc () {
  if (doc === null || provider === null) throw new Error('not connected: send connect first')
  return doc
}

const KINDS = {
  text: (d, name) => d.getText(name),
  map: (d, name) => d.getMap(name),
  array: (d, name) => d.getArray(name),
  xml: (d, name) => d.getXmlFragment(name)
}

function sharedType (kind, name) {
  const get = KINDS[kind]
  if (get === undefined) throw new Error(`unknown kind ${JSON.stringify(kind)} (text|map|array|xml)`)
  return get(requireDoc(), need(name, 'name'))
}

// Text and xml as strings, map and array as JSON: what the Python side compares against.
function valueOf (kind, name) {
  const t = sharedType(kind, name)
  return kind === 'text' || kind === 'xml' ? t.toString() : t.toJSON()
}

function sizeOf (value) {
  if (typeof value === 'string' || Array.isArray(value)) return value.length
  return Object.keys(value).length
}

// Key-order-insensitive equality for JSON values (map toJSON order is not insertion order).
function deepEqual (a, b) {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]))
}

const b64 = (u8) => Buffer.from(u8).toString('base64')

// A state as `expected` sees it: without the server-stamped "ysync" field unless
// `expected` asks about it.
function comparable (state, expected) {
  if (state === null || typeof state !== 'object' || expected === null || typeof expected !== 'object' || 'ysync' in expected) return state
  const { ysync, ...rest } = state
  return rest
}

function awarenessStates () {
  const states = {}
  for (const [clientId, state] of provider.awareness.getStates()) states[clientId] = state
  return states
}

function statusSnapshot () {
  return {
    client_id: doc.clientID,
    wsconnected: provider.wsconnected,
    wsconnecting: provider.wsconnecting,
    synced: provider.synced,
    should_connect: provider.shouldConnect,
    connects: track.connects,
    closes: track.closes,
    last_close: track.closes.at(-1) ?? null,
    local_closes: track.localCloses,
    terminal_close: track.terminalClose,
    permission_denied: track.permissionDenied,
    connection_errors: track.errors,
    unsuccessful_reconnects: provider.wsUnsuccessfulReconnects
  }
}

// ---- commands --------------------------------------------------------------------------------
// Each takes the command object and returns (or resolves to) the reply's extra fields.

const COMMANDS = {
  // {url, room, params?, client_id?, autoconnect? = true, max_backoff_ms?, resync_interval_ms?}
  connect (a) {
    if (provider !== null) throw new Error('already connected: destroy first')
    doc = new Y.Doc()
    // Must be set before the provider creates the Awareness, which copies doc.clientID.
    if (a.client_id != null) doc.clientID = a.client_id
    track = freshTrack()
    const opts = {
      WebSocketPolyfill: WebSocket,
      params: a.params ?? {},
      disableBc: true, // all clients of a test run in separate processes anyway
      connect: a.autoconnect ?? true
    }
    if (a.max_backoff_ms != null) opts.maxBackoffTime = a.max_backoff_ms
    if (a.resync_interval_ms != null) opts.resyncInterval = a.resync_interval_ms
    const p = new WebsocketProvider(need(a.url, 'url'), need(a.room, 'room'), doc, opts)
    // Record auth (permission denied) messages instead of only console.warn-ing them.
    p.messageHandlers[messageAuth] = (_enc, decoder, prov) => {
      authProtocol.readAuthMessage(decoder, prov.doc, (_doc, reason) => {
        track.permissionDenied.push(reason)
        emitEvent('permission-denied', { reason })
        poke()
      })
    }
    p.on('status', ({ status }) => {
      if (status === 'connected') track.connects++
      emitEvent('status', { status })
      poke()
    })
    p.on('sync', (synced) => {
      emitEvent('sync', { synced })
      poke()
    })
    p.on('connection-close', (event) => {
      if (event == null) {
        track.localCloses++
        emitEvent('connection-close', { local: true })
      } else {
        const close = { code: event.code, reason: String(event.reason ?? ''), was_clean: event.wasClean ?? null }
        track.closes.push(close)
        emitEvent('connection-close', close)
      }
      poke()
    })
    p.on('closed', ({ code, reason }) => {
      track.terminalClose = { code, reason: String(reason ?? '') }
      emitEvent('closed', track.terminalClose)
      poke()
    })
    p.on('connection-error', (event) => {
      track.errors++
      emitEvent('connection-error', { message: String(event?.message ?? event?.error ?? 'error') })
      poke()
    })
    doc.on('update', poke)
    p.awareness.on('change', poke)
    provider = p
    return { client_id: doc.clientID, url: p.url }
  },

  // {timeout_ms? = 5000}
  wait_synced (a) {
    requireDoc()
    const timeout = a.timeout_ms ?? 5000
    return waitUntil(() => (provider.synced ? { synced: true } : undefined), timeout,
      () => `not synced (${JSON.stringify(statusSnapshot())})`)
  },

  // {count? = 1, timeout_ms? = 5000}: until the server closed this many connections in total.
  wait_close (a) {
    requireDoc()
    const count = a.count ?? 1
    return waitUntil(() => (track.closes.length >= count ? { close: track.closes[count - 1], closes: track.closes } : undefined),
      a.timeout_ms ?? 5000, () => `${track.closes.length} of ${count} server closes seen`)
  },

  // {connects, timeout_ms? = 5000}: until the socket has opened this many times in total.
  wait_connects (a) {
    requireDoc()
    const count = need(a.connects, 'connects')
    return waitUntil(() => (track.connects >= count ? { connects: track.connects } : undefined),
      a.timeout_ms ?? 5000, () => `${track.connects} of ${count} connects seen`)
  },

  status () {
    requireDoc()
    return statusSnapshot()
  },

  text_insert (a) {
    sharedType('text', a.name).insert(need(a.index, 'index'), need(a.value, 'value'), a.attrs ?? undefined)
    return {}
  },
  text_delete (a) {
    sharedType('text', a.name).delete(need(a.index, 'index'), need(a.length, 'length'))
    return {}
  },
  map_set (a) {
    sharedType('map', a.name).set(need(a.key, 'key'), a.value ?? null)
    return {}
  },
  map_delete (a) {
    sharedType('map', a.name).delete(need(a.key, 'key'))
    return {}
  },
  array_push (a) {
    sharedType('array', a.name).push(need(a.values, 'values'))
    return {}
  },
  array_insert (a) {
    sharedType('array', a.name).insert(need(a.index, 'index'), need(a.values, 'values'))
    return {}
  },
  array_delete (a) {
    sharedType('array', a.name).delete(need(a.index, 'index'), a.length ?? 1)
    return {}
  },
  // {name, tag, text?, attrs?}: append <tag attrs>text</tag> to a Y.XmlFragment, one transaction.
  xml_append_element (a) {
    const fragment = sharedType('xml', a.name)
    const element = new Y.XmlElement(need(a.tag, 'tag'))
    for (const [k, v] of Object.entries(a.attrs ?? {})) element.setAttribute(k, v)
    if (a.text != null) element.insert(0, [new Y.XmlText(a.text)])
    fragment.push([element])
    return {}
  },

  prosemirror_set (a) {
    prosemirrorJSONToYXmlFragment(basicSchema, need(a.doc, 'doc'), sharedType('xml', a.name))
    return {}
  },
  prosemirror_get (a) {
    return { doc: yXmlFragmentToProsemirrorJSON(sharedType('xml', a.name)) }
  },

  // {names: {name: kind}} -> {values: {name: value}, state_vector, update, client_id}
  state (a) {
    const d = requireDoc()
    const values = {}
    for (const [name, kind] of Object.entries(a.names ?? {})) values[name] = valueOf(kind, name)
    return { values, state_vector: b64(Y.encodeStateVector(d)), update: b64(Y.encodeStateAsUpdate(d)), client_id: d.clientID }
  },

  // {update: base64}: origin is not the provider, so the provider forwards it to the server.
  apply_update (a) {
    Y.applyUpdate(requireDoc(), Buffer.from(need(a.update, 'update'), 'base64'), 'test')
    return {}
  },

  // {name, kind, equals? | length?, timeout_ms? = 5000}: until the value equals / has that length.
  wait_for (a) {
    const { name, kind } = a
    valueOf(kind, name) // validate kind and name now, not at the first check
    const matches = a.length != null
      ? (v) => sizeOf(v) === a.length
      : (v) => deepEqual(v, a.equals)
    return waitUntil(() => {
      const value = valueOf(kind, name)
      return matches(value) ? { value } : undefined
    }, a.timeout_ms ?? 5000, () => {
      const v = valueOf(kind, name)
      const shown = JSON.stringify(v)
      return `${kind} ${JSON.stringify(name)} is ${shown.length > 500 ? shown.slice(0, 500) + '…' : shown} (size ${sizeOf(v)})`
    })
  },

  // {state}: null removes the local state (and tells the server so).
  awareness_set (a) {
    requireDoc()
    provider.awareness.setLocalState(a.state ?? null)
    return { client_id: doc.clientID }
  },
  awareness_states () {
    requireDoc()
    return { client_id: doc.clientID, states: awarenessStates() }
  },
  // {client_id, present? = true, equals?, timeout_ms? = 5000} or {count, timeout_ms?}:
  // until client_id's state is there (deep-equal to `equals` if given; the
  // server's "ysync" identity field only counts when `equals` has one) / gone,
  // or until exactly `count` states (own included) are known.
  wait_awareness (a) {
    requireDoc()
    const present = a.present ?? true
    const check = () => {
      const states = provider.awareness.getStates()
      let ok
      if (a.count != null) ok = states.size === a.count
      else {
        const id = need(a.client_id, 'client_id or count')
        ok = present
          ? states.has(id) && (a.equals === undefined || deepEqual(comparable(states.get(id), a.equals), a.equals))
          : !states.has(id)
      }
      return ok ? { states: awarenessStates() } : undefined
    }
    return waitUntil(check, a.timeout_ms ?? 5000, () => `awareness states are ${JSON.stringify(awarenessStates())}`)
  },

  // {name, count, char? = "x"}: count one-character appends, one transaction each.
  bulk_text_insert (a) {
    const text = sharedType('text', a.name)
    const count = need(a.count, 'count')
    const char = a.char ?? 'x'
    const start = performance.now()
    for (let i = 0; i < count; i++) text.insert(text.length, char)
    return { elapsed_ms: performance.now() - start, length: text.length }
  },

  // {name, index, assoc? = 0}: what a comments UI stores as a thread's anchor.
  relative_position (a) {
    const text = sharedType('text', a.name)
    const position = Y.createRelativePositionFromTypeIndex(text, need(a.index, 'index'), a.assoc ?? 0)
    return { position: b64(Y.encodeRelativePosition(position)) }
  },
  // {position: b64}: where that position is in this client's document now (null: nowhere).
  absolute_position (a) {
    const position = Y.decodeRelativePosition(Buffer.from(need(a.position, 'position'), 'base64'))
    const absolute = Y.createAbsolutePositionFromRelativePosition(position, requireDoc())
    return { index: absolute === null ? null : absolute.index }
  },

  disconnect () {
    requireDoc()
    provider.disconnect()
    return {}
  },
  reconnect () {
    requireDoc()
    provider.connect()
    return {}
  },
  // Drops the provider and the doc; a new connect may follow.
  destroy () {
    if (provider !== null) provider.destroy()
    if (doc !== null) doc.destroy()
    provider = null
    doc = null
    for (const w of [...waiters]) w.fail(new Error('destroyed while waiting'))
    return {}
  },
  exit () {
    // Reply first; pipes to the parent are written synchronously on Linux.
    setImmediate(() => process.exit(0))
    return {}
  }
}

async function handle (line) {
  let msg
  try {
    msg = JSON.parse(line)
  } catch (err) {
    write({ id: null, error: `bad JSON: ${err.message}` })
    return
  }
  const id = msg.id ?? null
  try {
    const command = Object.hasOwn(COMMANDS, msg.cmd) ? COMMANDS[msg.cmd] : undefined
    if (command === undefined) throw new Error(`unknown command ${JSON.stringify(msg.cmd)}`)
    const result = await command(msg)
    write({ id, ok: true, ...result })
  } catch (err) {
    write({ id, error: err?.message ?? String(err) })
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => {
  if (line.trim() !== '') handle(line)
})
// The parent went away: nothing will ever read our replies.
rl.on('close', () => process.exit(0))
