// The canvas view: shapes and sticky notes in the room's `elements` Y.Map
// (id -> Y.Map {type, x, y, w, h, color, text}) and a `metadata` Y.Map ({title}).
// Presence goes through awareness: {cursor: {x, y}, selection: [ids], dragging: id | null,
// ysyncLocks: [ids] (the lock request, see docs/presence.md)},
// in canvas coordinates (the canvas is a fixed 1600x1000 world, scrolled, not scaled,
// so every client places a cursor at the same spot).

import * as Y from 'yjs'
import { displayColor, displayName } from '../shared/names.js'

const SVG = 'http://www.w3.org/2000/svg'
export const WORLD = { w: 1600, h: 1000 }
const MIN_SIZE = 20
const TYPES = { rect: 'Rectangle', ellipse: 'Ellipse', sticky: 'Sticky note' }
const SIZES = { rect: [160, 100], ellipse: [140, 100], sticky: [160, 160] }
export const COLORS = [
  ['Yellow', '#fde68a'], ['Pink', '#fbcfe8'], ['Green', '#bbf7d0'],
  ['Blue', '#bfdbfe'], ['Purple', '#ddd6fe'], ['Gray', '#e5e7eb']
]
const COLOR_NAMES = Object.fromEntries(COLORS.map(([name, value]) => [value, name]))

const svgNode = (tag, attrs = {}) => {
  const node = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value)
  return node
}
const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi)
const num = (v, fallback) => (Number.isFinite(v) ? v : fallback)

/** One element's fields, checked: any client may write anything into the document. */
export const readElement = (map) => {
  const type = TYPES[map.get('type')] ? map.get('type') : 'rect'
  const color = map.get('color')
  return {
    type,
    x: num(map.get('x'), 0),
    y: num(map.get('y'), 0),
    w: Math.max(MIN_SIZE, num(map.get('w'), SIZES[type][0])),
    h: Math.max(MIN_SIZE, num(map.get('h'), SIZES[type][1])),
    color: typeof color === 'string' && /^#[0-9a-fA-F]{6}$/.test(color) ? color : COLORS[0][1],
    text: typeof map.get('text') === 'string' ? map.get('text') : ''
  }
}

// Ids sort in creation order, so every client stacks elements alike.
const newId = () => Date.now().toString(36).padStart(9, '0') + '-' + Math.random().toString(36).slice(2, 8)

/** Seconds or milliseconds since the epoch -> milliseconds. */
const epochMs = (t) => (t < 1e12 ? t * 1000 : t)

/** The client id of the server's own awareness state, where it publishes the room's locks. */
export const SERVER_CLIENT = 0xFFFFFFFF

/**
 * Element locks the server publishes in its own awareness state:
 * {ysync: {locks: {elementId: {userId, name, since, expiresAt, fence, clientId?}}}}.
 * `states` is awareness.getStates(). Returns elementId -> {userId, name} held by
 * someone else: not expired, not taken by this connection (`myClientId`), and no
 * REST lock (no clientId) of our own user id (with auth off `myUserId` is null).
 * The holder's connection names it as its cursor does: with auth off every lock
 * says "anonymous", and the connection's own name is what there is.
 */
export const locksOf = (states, { myClientId = null, myUserId = null, now = Date.now() } = {}) => {
  const locks = new Map()
  const held = states.get(SERVER_CLIENT)?.ysync?.locks
  if (!held || typeof held !== 'object') return locks
  for (const [id, lock] of Object.entries(held)) {
    if (typeof lock?.userId !== 'string' || lock.clientId === myClientId) continue
    if (lock.clientId == null && myUserId && lock.userId === myUserId) continue
    if (Number.isFinite(lock.expiresAt) && epochMs(lock.expiresAt) <= now) continue
    const own = typeof lock.name === 'string' && lock.name.trim() ? lock.name.trim().slice(0, 40) : lock.userId
    const name = (Number.isInteger(lock.clientId) && displayName(states.get(lock.clientId))) || own
    locks.set(id, { userId: lock.userId, name })
  }
  return locks
}

/** An element's accessible description: type, color, text. */
const describeElement = (el) => `${TYPES[el.type]}, ${COLOR_NAMES[el.color] ?? el.color}${el.text ? ': ' + el.text : ''}`

/** A new, empty element node (shape, text box, resize handle); `paintElement` fills it. */
export const createElementNode = (id) => {
  const g = svgNode('g', { class: 'el', tabindex: '0', role: 'option', 'data-id': id })
  const shape = svgNode('rect', { class: 'shape' })
  const label = svgNode('foreignObject', { class: 'label-box' })
  const div = document.createElement('div')
  label.append(div)
  const handle = svgNode('rect', { class: 'handle', width: 14, height: 14, rx: 3 })
  g.append(shape, label, handle)
  return g
}

/** Draws `el` (from readElement) into its node: place, shape, color, text. */
export const paintElement = (g, el) => {
  g.setAttribute('transform', `translate(${el.x} ${el.y})`)
  g.dataset.type = el.type
  g.setAttribute('aria-label', describeElement(el))
  let [shape, label, handle] = g.children
  if (shape.dataset.type !== el.type) {
    const next = el.type === 'ellipse' ? svgNode('ellipse') : svgNode('rect')
    next.dataset.type = el.type
    next.classList.add('shape')
    g.replaceChild(next, shape)
    shape = next
  }
  if (el.type === 'ellipse') {
    Object.entries({ cx: el.w / 2, cy: el.h / 2, rx: el.w / 2, ry: el.h / 2 }).forEach(([k, v]) => shape.setAttribute(k, v))
  } else {
    Object.entries({ width: el.w, height: el.h, rx: el.type === 'sticky' ? 2 : 8 }).forEach(([k, v]) => shape.setAttribute(k, v))
  }
  shape.setAttribute('fill', el.color)
  label.setAttribute('width', el.w)
  label.setAttribute('height', el.h)
  label.firstChild.textContent = el.text
  label.firstChild.className = el.type === 'sticky' ? 'label sticky' : 'label'
  handle.setAttribute('x', el.w - 7)
  handle.setAttribute('y', el.h - 7)
}

export const mountCanvas = ({ doc, awareness, me = () => null }) => {
  const elements = doc.getMap('elements')
  const metadata = doc.getMap('metadata')
  const svg = document.getElementById('canvas')
  const viewport = document.getElementById('canvas-viewport')
  const layers = {
    elements: document.getElementById('layer-elements'),
    selections: document.getElementById('layer-selections'),
    locks: document.getElementById('layer-locks'),
    cursors: document.getElementById('layer-cursors')
  }
  const deleteButton = document.getElementById('delete-element')
  const textBox = document.getElementById('element-text')
  const titleInput = document.getElementById('board-title')
  const nodes = new Map() // element id -> <g>
  let selection = []
  let color = COLORS[0][1]
  let drag = null // {id, mode: 'move' | 'resize', start: {px, py, x, y, w, h}, next}
  let editing = null // element id whose text is in the text box
  let locks = new Map() // element id -> {userId, name}: held by someone else

  // ---- the document -> the DOM -------------------------------------------------
  const renderElement = (g, id, el) => {
    paintElement(g, el)
    const lock = locks.get(id)
    if (lock) g.setAttribute('aria-label', `${describeElement(el)}, locked by ${lock.name}`)
    g.classList.toggle('locked', Boolean(lock))
    if (lock) g.dataset.lockedBy = lock.name
    else delete g.dataset.lockedBy
    g.setAttribute('aria-selected', String(selection.includes(id)))
  }

  const render = () => {
    const ids = [...elements.keys()].sort()
    for (const [id, g] of nodes) {
      if (!elements.has(id)) {
        g.remove()
        nodes.delete(id)
      }
    }
    ids.forEach((id, index) => {
      let g = nodes.get(id)
      if (!g) {
        g = createElementNode(id)
        nodes.set(id, g)
      }
      const map = elements.get(id)
      if (map instanceof Y.Map) renderElement(g, id, readElement(map))
      if (layers.elements.children[index] !== g) layers.elements.insertBefore(g, layers.elements.children[index] ?? null)
    })
    const kept = selection.filter((id) => elements.has(id))
    if (kept.length !== selection.length) select(kept)
    document.getElementById('canvas-hint').hidden = ids.length > 0
    renderSelections()
    renderLockBadges()
    if (editing && !elements.has(editing)) stopEditing()
  }

  let frame = 0
  const scheduleRender = () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; render() })
  }
  elements.observeDeep(scheduleRender)

  const showTitle = () => {
    const title = metadata.get('title')
    if (document.activeElement !== titleInput) titleInput.value = typeof title === 'string' ? title : ''
  }
  metadata.observe(showTitle)
  titleInput.addEventListener('change', () => metadata.set('title', titleInput.value.trim()))

  // ---- presence: others' cursors and selections -------------------------------------
  const remoteStates = () => [...awareness.getStates()].filter(([client]) => client !== doc.clientID)

  const renderCursors = () => {
    layers.cursors.replaceChildren(...remoteStates().flatMap(([client, state]) => {
      const c = state.cursor
      if (!c || !Number.isFinite(c.x) || !Number.isFinite(c.y)) return []
      const name = displayName(state) ?? `Client ${client}`
      const fill = displayColor(state)
      const g = svgNode('g', { class: 'cursor', transform: `translate(${c.x} ${c.y})` })
      Object.assign(g.dataset, { client, name, x: c.x, y: c.y })
      const width = 12 + 7.5 * name.length
      g.append(
        svgNode('path', { d: 'M0 0 L0 17 L4.5 13 L8 20.5 L11 19 L7.5 11.8 L13.5 11.8 Z', fill, stroke: '#fff', 'stroke-width': 1.2 }),
        svgNode('rect', { x: 12, y: 18, rx: 4, width, height: 20, fill })
      )
      const text = svgNode('text', { x: 18, y: 32, class: 'cursor-name' })
      text.textContent = name
      g.append(text)
      return [g]
    }))
  }

  const renderSelections = () => {
    layers.selections.replaceChildren(...remoteStates().flatMap(([client, state]) => {
      const ids = Array.isArray(state.selection) ? state.selection.slice(0, 50) : []
      return ids.flatMap((id) => {
        const map = typeof id === 'string' && elements.get(id)
        if (!(map instanceof Y.Map)) return []
        const el = readElement(map)
        const outline = svgNode('rect', {
          class: 'remote-selection', x: el.x - 4, y: el.y - 4, width: el.w + 8, height: el.h + 8, rx: 10, stroke: displayColor(state)
        })
        Object.assign(outline.dataset, { client, id })
        return [outline]
      })
    }))
  }
  // Badges over locked elements; redrawn with the elements too (a held element moves).
  const renderLockBadges = () => {
    layers.locks.replaceChildren(...[...locks].flatMap(([id, lock]) => {
      const map = elements.get(id)
      if (!(map instanceof Y.Map)) return []
      const el = readElement(map)
      const badge = svgNode('g', { class: 'lock-badge', transform: `translate(${el.x} ${el.y - 24})` })
      badge.dataset.id = id
      const label = `🔒 ${lock.name}`
      badge.append(svgNode('rect', { rx: 4, width: 14 + 7.5 * label.length, height: 20 }))
      const text = svgNode('text', { x: 7, y: 14 })
      text.textContent = label
      badge.append(text)
      return [badge]
    }))
  }
  const renderLocks = () => {
    const next = locksOf(awareness.getStates(), { myClientId: awareness.clientID, myUserId: me() })
    const changed = next.size !== locks.size || [...next].some(([id, l]) => locks.get(id)?.name !== l.name)
    locks = next
    if (drag && locks.has(drag.id)) endDrag() // pressed at the same time: the server gave it to the other
    if (changed) render()
    else renderLockBadges()
  }
  awareness.on('change', () => { renderCursors(); renderSelections(); renderLocks() })

  // ---- local selection and edits --------------------------------------------------
  const select = (ids) => {
    selection = ids
    awareness.setLocalStateField('selection', ids)
    for (const [id, g] of nodes) g.setAttribute('aria-selected', String(ids.includes(id)))
    deleteButton.disabled = ids.length === 0
  }

  // What we hold, through the server's lock protocol: the element being dragged,
  // or the ones moved with the keys until a second after the last key.
  let keysHeld = 0
  const hold = (ids, dragging = null) => {
    clearTimeout(keysHeld)
    awareness.setLocalState({ ...awareness.getLocalState(), dragging, ysyncLocks: ids })
  }

  const update = (id, fields) => {
    const map = elements.get(id)
    if (!(map instanceof Y.Map)) return
    doc.transact(() => {
      for (const [k, v] of Object.entries(fields)) if (map.get(k) !== v) map.set(k, v)
    })
  }

  const add = (type) => {
    const id = newId()
    const [w, h] = SIZES[type]
    const n = elements.size % 6
    const x = clamp(viewport.scrollLeft + 40 + n * 36, 0, WORLD.w - w)
    const y = clamp(viewport.scrollTop + 40 + n * 28, 0, WORLD.h - h)
    doc.transact(() => {
      const map = new Y.Map()
      elements.set(id, map)
      Object.entries({ type, x, y, w, h, color, text: type === 'sticky' ? 'Note' : '' }).forEach(([k, v]) => map.set(k, v))
    })
    render()
    select([id])
    nodes.get(id)?.focus()
  }

  const removeSelected = () => {
    const gone = selection.filter((id) => !locks.has(id)) // not what someone else holds
    if (!gone.length) return
    doc.transact(() => gone.forEach((id) => elements.delete(id)))
    select([])
    render()
    svg.focus()
  }

  const recolor = (value) => {
    color = value
    document.querySelectorAll('.swatch').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.color === value)))
    doc.transact(() => selection.forEach((id) => update(id, { color: value })))
  }

  // ---- text on an element -----------------------------------------------------------
  const startEditing = (id) => {
    const map = elements.get(id)
    if (!(map instanceof Y.Map)) return
    const el = readElement(map)
    editing = id
    Object.assign(textBox.style, { left: `${el.x}px`, top: `${el.y}px`, width: `${el.w}px`, height: `${el.h}px` })
    textBox.value = el.text
    textBox.hidden = false
    textBox.focus()
    textBox.select()
  }
  const stopEditing = (focusElement = false) => {
    const id = editing
    editing = null
    textBox.hidden = true
    if (focusElement && id) nodes.get(id)?.focus()
  }
  textBox.addEventListener('input', () => editing && update(editing, { text: textBox.value.slice(0, 2000) }))
  textBox.addEventListener('blur', () => stopEditing())
  textBox.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' || (e.key === 'Enter' && !e.shiftKey)) {
      e.preventDefault()
      stopEditing(true)
    }
  })

  // ---- pointer: select, drag, resize, cursor ----------------------------------------------
  const toWorld = (e) => {
    const box = svg.getBoundingClientRect()
    return { x: Math.round(e.clientX - box.left), y: Math.round(e.clientY - box.top) }
  }
  let cursorFrame = 0
  let cursorAt = null
  const sendCursor = (point) => {
    cursorAt = point
    if (!cursorFrame) {
      cursorFrame = requestAnimationFrame(() => {
        cursorFrame = 0
        awareness.setLocalStateField('cursor', cursorAt)
      })
    }
  }

  const applyDrag = () => {
    if (!drag?.next) return
    update(drag.id, drag.next)
    drag.next = null
  }

  svg.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return
    const g = e.target.closest('.el')
    if (!g) {
      select([])
      return
    }
    const id = g.dataset.id
    const map = elements.get(id)
    if (!(map instanceof Y.Map)) return
    e.preventDefault() // no text selection while dragging
    if (e.shiftKey) select(selection.includes(id) ? selection.filter((s) => s !== id) : [...selection, id])
    else if (!selection.includes(id)) select([id])
    g.focus({ preventScroll: true })
    if (locks.has(id)) return // someone else holds it: selectable, not movable
    const el = readElement(map)
    const p = toWorld(e)
    drag = { id, mode: e.target.classList.contains('handle') ? 'resize' : 'move', start: { px: p.x, py: p.y, ...el }, next: null }
    svg.setPointerCapture(e.pointerId)
    hold([id], id)
  })

  svg.addEventListener('pointermove', (e) => {
    const p = toWorld(e)
    sendCursor(p)
    if (!drag) return
    const { start } = drag
    const dx = p.x - start.px
    const dy = p.y - start.py
    drag.next = drag.mode === 'move'
      ? { x: clamp(start.x + dx, 0, WORLD.w - start.w), y: clamp(start.y + dy, 0, WORLD.h - start.h) }
      : { w: clamp(start.w + dx, MIN_SIZE, WORLD.w - start.x), h: clamp(start.h + dy, MIN_SIZE, WORLD.h - start.y) }
    requestAnimationFrame(applyDrag)
  })

  const endDrag = () => {
    if (!drag) return
    applyDrag()
    drag = null
    hold([])
  }
  svg.addEventListener('pointerup', endDrag)
  svg.addEventListener('pointercancel', endDrag)
  svg.addEventListener('pointerleave', () => {
    cursorAt = null
    awareness.setLocalStateField('cursor', null)
  })
  svg.addEventListener('dblclick', (e) => {
    const g = e.target.closest('.el')
    if (g) startEditing(g.dataset.id)
  })

  // ---- keyboard -----------------------------------------------------------------------
  svg.addEventListener('focusin', (e) => {
    const g = e.target.closest?.('.el')
    if (g && !selection.includes(g.dataset.id)) select([g.dataset.id])
  })
  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }
  svg.addEventListener('keydown', (e) => {
    if (ARROWS[e.key] && selection.length) {
      e.preventDefault()
      const [ux, uy] = ARROWS[e.key]
      const step = e.shiftKey ? 1 : 10
      const moved = selection.filter((id) => elements.get(id) instanceof Y.Map && !locks.has(id))
      if (!drag && moved.length) {
        hold(moved.slice(0, 50))
        keysHeld = setTimeout(() => hold([]), 1000)
      }
      doc.transact(() => moved.forEach((id) => {
        const map = elements.get(id)
        const el = readElement(map)
        update(id, e.altKey
          ? { w: clamp(el.w + ux * step, MIN_SIZE, WORLD.w - el.x), h: clamp(el.h + uy * step, MIN_SIZE, WORLD.h - el.y) }
          : { x: clamp(el.x + ux * step, 0, WORLD.w - el.w), y: clamp(el.y + uy * step, 0, WORLD.h - el.h) })
      }))
    } else if ((e.key === 'Delete' || e.key === 'Backspace') && selection.length) {
      e.preventDefault()
      removeSelected()
    } else if (e.key === 'Enter' && selection.length === 1) {
      e.preventDefault()
      startEditing(selection[0])
    } else if (e.key === 'Escape') {
      select([])
      svg.focus()
    }
  })

  // ---- the tools ----------------------------------------------------------------------
  document.querySelectorAll('[data-add]').forEach((b) => b.addEventListener('click', () => add(b.dataset.add)))
  deleteButton.addEventListener('click', removeSelected)
  const swatches = document.querySelector('.swatches')
  for (const [name, value] of COLORS) {
    const b = document.createElement('button')
    Object.assign(b, { type: 'button', className: 'swatch', title: name })
    b.dataset.color = value
    b.style.background = value
    b.setAttribute('aria-label', `Color ${name}`)
    b.setAttribute('aria-pressed', String(value === color))
    b.addEventListener('click', () => recolor(value))
    swatches.append(b)
  }

  render()
  showTitle()
}
