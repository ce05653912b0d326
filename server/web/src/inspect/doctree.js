// A Y.Doc as JSON, and JSON as a collapsible tree.
//
// The inspector does not know a room's schema: a top-level type it has only
// received from the server is a bare AbstractType until someone names its kind.
// `docToJSON` names it from its content (keys: a Map; a first item that is a
// string or format: a Text; an XML element or text: an XmlFragment; else an
// Array), as `doc.get(name, Kind)` allows for bare types.

import * as Y from 'yjs'

const MAX_ITEMS = 200
const MAX_STRING = 500

const kindOf = (type) => {
  if (type._map.size > 0) return Y.Map
  let item = type._start
  while (item !== null && item.deleted) item = item.right
  if (item === null) return null
  const content = item.content
  if (content instanceof Y.ContentType) {
    return content.type instanceof Y.XmlElement || content.type instanceof Y.XmlText ? Y.XmlFragment : Y.Array
  }
  if (content instanceof Y.ContentString || content instanceof Y.ContentFormat || content instanceof Y.ContentEmbed) return Y.Text
  return Y.Array
}

const deltaJSON = (text) => {
  const delta = text.toDelta()
  return delta.every((op) => typeof op.insert === 'string' && !op.attributes)
    ? delta.map((op) => op.insert).join('')
    : delta
}

/** Any Yjs value as plain JSON (XML elements as {nodeName, attributes, children}). */
export const valueJSON = (value) => {
  if (value instanceof Y.XmlElement) {
    return { nodeName: value.nodeName, attributes: value.getAttributes(), children: value.toArray().map(valueJSON) }
  }
  if (value instanceof Y.XmlFragment) return value.toArray().map(valueJSON)
  if (value instanceof Y.XmlText || value instanceof Y.Text) return deltaJSON(value)
  if (value instanceof Y.Map) {
    return Object.fromEntries([...value.keys()].sort().map((key) => [key, valueJSON(value.get(key))]))
  }
  if (value instanceof Y.Array) return value.toArray().map(valueJSON)
  if (value instanceof Y.Doc) return `<subdocument ${value.guid}>`
  if (value instanceof Uint8Array) return `<${value.length} bytes>`
  return value
}

export const docToJSON = (doc) => {
  const out = {}
  for (const name of [...doc.share.keys()].sort()) {
    let type = doc.share.get(name)
    if (type.constructor === Y.AbstractType) {
      const Kind = kindOf(type)
      if (Kind === null) continue // never written, or everything in it deleted
      type = doc.get(name, Kind)
    }
    out[name] = valueJSON(type)
  }
  return out
}

/**
 * Render `value` into `container` as nested <details>. `collapsed` is a Set of
 * paths the user closed; it is kept across renders.
 */
export const renderTree = (container, value, collapsed) => {
  const leaf = (key, v) => {
    const row = document.createElement('div')
    row.className = 'leaf'
    const k = document.createElement('span')
    k.className = 'key'
    k.textContent = key
    const val = document.createElement('span')
    val.className = `value ${v === null ? 'null' : typeof v}`
    const text = JSON.stringify(v)
    val.textContent = text.length > MAX_STRING ? text.slice(0, MAX_STRING) + '…' : text
    row.append(k, val)
    return row
  }
  const node = (key, v, path) => {
    if (v === null || typeof v !== 'object') return leaf(key, v)
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v)
    const details = document.createElement('details')
    details.open = !collapsed.has(path)
    details.dataset.path = path
    details.addEventListener('toggle', () => (details.open ? collapsed.delete(path) : collapsed.add(path)))
    const summary = document.createElement('summary')
    const k = document.createElement('span')
    k.className = 'key'
    k.textContent = key
    const count = document.createElement('span')
    count.className = 'count'
    count.textContent = Array.isArray(v) ? `[${entries.length}]` : `{${entries.length}}`
    summary.append(k, count)
    details.append(summary)
    for (const [childKey, child] of entries.slice(0, MAX_ITEMS)) details.append(node(childKey, child, `${path}/${childKey}`))
    if (entries.length > MAX_ITEMS) details.append(leaf('…', `${entries.length - MAX_ITEMS} more`))
    return details
  }
  const entries = Object.entries(value)
  container.replaceChildren(...(entries.length
    ? entries.map(([key, v]) => node(key, v, key))
    : [Object.assign(document.createElement('p'), { className: 'muted', textContent: 'The document is empty.' })]))
}
