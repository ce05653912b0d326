// Real Hocuspocus clients (yjs + @hocuspocus/provider v3 or v4) driven by the Python tests.
//
// One process holds one HocuspocusProviderWebsocket (one socket) and any number of
// HocuspocusProviders over it, one per document (what TipTap apps do with several editors).
// Protocol as tests/js/yclient.mjs: one JSON command per line on stdin, one reply line per
// command with the same "id": {"id", "ok": true, ...} or {"id", "error"}. wait_* take
// timeout_ms (default 5000) and poll what the providers reported.
//
// Commands (arguments -> reply fields besides id/ok):
//   connect {url, version: 3|4, message_reconnect_timeout_ms?}          -> {}
//   open {doc, tokens?: [..], session_awareness?, awareness?=true}      -> {client_id}
//        (the provider's token is a function handing out `tokens` in turn, the last one again
//        and again: a token refresh asks it once more)
//   set_tokens {doc, tokens}                                            -> {}
//   wait {doc, until: "authenticated"|"denied"|"synced"|"unsynced_zero"} -> {doc: status}
//   doc_status {doc}  -> {scope, denied: [reason], synced, unsynced, stateless: [payload],
//                         closes: [reason], authenticated}
//   status {}         -> {status, connects, closes: [{code, reason}]}
//   wait_connects {count}                                               -> {connects}
//   edit {doc, kind: text|map|array|xml, name, ...}: text {index, value}, map {key, value},
//        array {values}, xml {tag, text}                                -> {}
//   state {doc, names: {name: kind}}                                    -> {values}
//   wait_for {doc, name, kind, equals}                                  -> {value}
//   awareness_set {doc, state}                                          -> {client_id}
//   wait_awareness {doc, client_id, equals}                             -> {states}
//   stateless {doc, payload}                                            -> {}
//   wait_stateless {doc, count}                                         -> {payloads}
//   close_doc {doc}   (destroy the provider: it sends Close)            -> {}
//   disconnect {}  exit {}                                              -> {}

import * as readline from 'node:readline'
import WebSocket from 'ws'
import * as Y from 'yjs'

let socket = null // HocuspocusProviderWebsocket
let lib = null // the provider package
const docs = new Map() // name -> {provider, doc, track}
const socketTrack = { connects: 0, closes: [] }

const write = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function waitUntil(check, timeoutMs, describe) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = check()
    if (result !== undefined) return result
    if (Date.now() > deadline) throw new Error(`timeout after ${timeoutMs} ms: ${describe()}`)
    await sleep(10)
  }
}

function need(value, what) {
  if (value === undefined || value === null) throw new Error(`missing argument: ${what}`)
  return value
}

function entry(name) {
  const found = docs.get(need(name, 'doc'))
  if (!found) throw new Error(`no document ${name} open`)
  return found
}

function docStatus(e) {
  return {
    scope: e.provider.authorizedScope ?? null,
    authenticated: e.provider.isAuthenticated,
    denied: e.track.denied,
    synced: e.provider.isSynced,
    unsynced: e.provider.unsyncedChanges,
    stateless: e.track.stateless,
    closes: e.track.closes,
  }
}

function shared(doc, kind, name) {
  if (kind === 'text') return doc.getText(name)
  if (kind === 'map') return doc.getMap(name)
  if (kind === 'array') return doc.getArray(name)
  if (kind === 'xml') return doc.getXmlFragment(name)
  throw new Error(`unknown kind ${kind}`)
}

function value(doc, kind, name) {
  const type = shared(doc, kind, name)
  return kind === 'text' || kind === 'xml' ? type.toString() : type.toJSON()
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)
// A state without the server-stamped "ysync" identity, unless `expected` asks about it.
const clientFields = (state, expected) => {
  if (state === null || typeof state !== 'object' || (expected && typeof expected === 'object' && 'ysync' in expected)) return state
  const { ysync, ...rest } = state
  return rest
}

const commands = {
  async connect({ url, version, message_reconnect_timeout_ms }) {
    lib = await import(version === 4 ? 'hocuspocus-provider-v4' : '@hocuspocus/provider')
    socket = new lib.HocuspocusProviderWebsocket({
      url: need(url, 'url'),
      WebSocketPolyfill: WebSocket,
      messageReconnectTimeout: message_reconnect_timeout_ms ?? 30000,
      delay: 100,
      minDelay: 100,
      maxDelay: 1000,
      onConnect: () => socketTrack.connects++,
      onClose: ({ event }) => socketTrack.closes.push({ code: event?.code, reason: event?.reason }),
    })
    return {}
  },

  async open({ doc: name, tokens, session_awareness, awareness }) {
    const doc = new Y.Doc()
    const track = { denied: [], stateless: [], closes: [], tokens: tokens ?? [''], handed: 0 }
    const config = {
      websocketProvider: need(socket, 'a connected socket'),
      name: need(name, 'doc'),
      document: doc,
      token: () => {
        const token = track.tokens[Math.min(track.handed, track.tokens.length - 1)]
        track.handed++
        return token
      },
      onAuthenticationFailed: ({ reason }) => track.denied.push(reason),
      onStateless: ({ payload }) => track.stateless.push(payload),
      onClose: ({ event }) => track.closes.push(event?.reason ?? null),
    }
    if (session_awareness) config.sessionAwareness = true
    if (awareness === false) config.awareness = null
    const provider = new lib.HocuspocusProvider(config)
    // v3 attaches in its constructor when given a socket; v4 wants attach().
    if (!provider.isAttached) provider.attach()
    docs.set(name, { provider, doc, track })
    return { client_id: doc.clientID }
  },

  async set_tokens({ doc, tokens }) {
    const e = entry(doc)
    e.track.tokens = need(tokens, 'tokens')
    e.track.handed = 0
    return {}
  },

  async wait({ doc, until, timeout_ms }) {
    const e = entry(doc)
    const checks = {
      authenticated: () => e.provider.isAuthenticated,
      denied: () => e.track.denied.length > 0,
      synced: () => e.provider.isSynced,
      unsynced_zero: () => e.provider.isSynced && e.provider.unsyncedChanges === 0,
    }
    const check = need(checks[until], `a known condition, not ${until}`)
    await waitUntil(() => (check() ? true : undefined), timeout_ms ?? 5000, () =>
      JSON.stringify({ until, ...docStatus(e) }),
    )
    return { doc: docStatus(e) }
  },

  async doc_status({ doc }) {
    return docStatus(entry(doc))
  },

  async status() {
    return { status: socket?.status ?? null, ...socketTrack }
  },

  async wait_connects({ count, timeout_ms }) {
    await waitUntil(
      () => (socketTrack.connects >= count ? true : undefined),
      timeout_ms ?? 5000,
      () => JSON.stringify(socketTrack),
    )
    return { connects: socketTrack.connects }
  },

  async edit({ doc, kind, name, index, value, key, values, tag, text }) {
    const type = shared(entry(doc).doc, kind, need(name, 'name'))
    if (kind === 'text') type.insert(index ?? 0, need(value, 'value'))
    else if (kind === 'map') type.set(need(key, 'key'), value)
    else if (kind === 'array') type.push(need(values, 'values'))
    else {
      const element = new Y.XmlElement(need(tag, 'tag'))
      const inner = new Y.XmlText()
      type.push([element])
      element.insert(0, [inner])
      inner.insert(0, text ?? '')
    }
    return {}
  },

  async state({ doc, names }) {
    const e = entry(doc)
    const values = {}
    for (const [name, kind] of Object.entries(need(names, 'names'))) values[name] = value(e.doc, kind, name)
    return { values }
  },

  async wait_for({ doc, name, kind, equals, timeout_ms }) {
    const e = entry(doc)
    const got = await waitUntil(
      () => {
        const v = value(e.doc, kind, name)
        return same(v, equals) ? v : undefined
      },
      timeout_ms ?? 5000,
      () => `${name} is ${JSON.stringify(value(e.doc, kind, name))}, want ${JSON.stringify(equals)}`,
    )
    return { value: got }
  },

  async awareness_set({ doc, state }) {
    const e = entry(doc)
    e.provider.awareness.setLocalState(state)
    return { client_id: e.doc.clientID }
  },

  async wait_awareness({ doc, client_id, equals, timeout_ms }) {
    const e = entry(doc)
    const states = () => Object.fromEntries(e.provider.awareness.getStates())
    await waitUntil(
      () => (same(clientFields(states()[client_id] ?? null, equals), equals) ? true : undefined),
      timeout_ms ?? 5000,
      () => JSON.stringify(states()),
    )
    return { states: states() }
  },

  async stateless({ doc, payload }) {
    entry(doc).provider.sendStateless(need(payload, 'payload'))
    return {}
  },

  async wait_stateless({ doc, count, timeout_ms }) {
    const e = entry(doc)
    await waitUntil(
      () => (e.track.stateless.length >= count ? true : undefined),
      timeout_ms ?? 5000,
      () => JSON.stringify(e.track.stateless),
    )
    return { payloads: e.track.stateless }
  },

  async close_doc({ doc }) {
    entry(doc).provider.destroy()
    docs.delete(doc)
    return {}
  },

  async disconnect() {
    socket?.disconnect()
    return {}
  },

  async exit() {
    setTimeout(() => process.exit(0), 10)
    return {}
  },
}

const lines = readline.createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  let msg
  try {
    msg = JSON.parse(line)
  } catch (err) {
    write({ event: 'bad-command', error: String(err) })
    return
  }
  const run = commands[msg.cmd]
  try {
    if (!run) throw new Error(`unknown command ${msg.cmd}`)
    write({ id: msg.id, ok: true, ...(await run(msg)) })
  } catch (err) {
    write({ id: msg.id, error: String(err?.stack ?? err) })
  }
})
lines.on('close', () => process.exit(0))
