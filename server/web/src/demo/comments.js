// Comment pins on the canvas. Threads live on the server, next to the document
// (the comments API: /api/rooms/{room}/threads), not in the Y.Doc; this module
// draws each open thread as a pin, opens a thread in a popover (replies, mentions,
// reactions, resolve) and stays live by refetching the threads whenever the room's
// event feed says a thread, comment or reaction changed.
//
// Anchors: a click on an element pins a point on it ({kind: 'point', x, y,
// element: {type: 'elements', key}}, x/y relative to the element, so the pin moves
// with it); a click on the empty canvas pins a point of the canvas; "Comment" with
// one element selected (the keyboard way) pins the element itself ({kind:
// 'element'}), drawn at its top-right corner. A pin whose element was deleted is
// not drawn (the thread stays in the Comments list).

import * as Y from 'yjs'
import { oneAtATime, roomApi } from '../shared/api.js'
import { displayName } from '../shared/names.js'
import { readElement, WORLD } from './canvas.js'

const SVG = 'http://www.w3.org/2000/svg'
const LIST_LIMIT = 100 // the newest 100 threads (one page)
const QUICK_EMOJI = ['👍', '🎉', '❤️']
const MENTION = /@([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)/g
const CHANGES = /^(thread|comment|reaction)\./

const html = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props)
  node.append(...children.filter((c) => c != null))
  return node
}

/** Plain text -> a comment body: one paragraph per line, `@user-id` as a mention. */
export const textToBody = (text) => ({
  version: 1,
  content: text.split('\n').map((line) => {
    const children = []
    let at = 0
    for (const m of line.matchAll(MENTION)) {
      if (m.index > at) children.push({ text: line.slice(at, m.index) })
      children.push({ type: 'mention', id: m[1] })
      at = m.index + m[0].length
    }
    if (at < line.length || !children.length) children.push({ text: line.slice(at) })
    return { type: 'paragraph', children }
  })
})

const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s)
const when = (iso) => {
  const t = new Date(iso)
  return Number.isNaN(t.getTime()) ? '' : t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
}

export const mountComments = ({ doc, awareness, room, token, me, follow }) => {
  const elements = doc.getMap('elements')
  const layer = document.getElementById('layer-pins')
  const popover = document.getElementById('thread-popover')
  const tool = document.getElementById('comment-tool')
  const list = document.getElementById('comments-list')
  const listBody = document.getElementById('comments-list-items')
  const svg = document.getElementById('canvas')
  let threads = [] // newest first, from the server
  let open = null // {threadId} | {anchor} (a new thread being written)
  let placing = false

  for (const node of [tool, list]) node.hidden = false

  // ---- the API ----------------------------------------------------------------------
  const call = roomApi(room, token)
  // Offline: once back online (the listener below).
  const refresh = oneAtATime(async () => {
    threads = (await call('GET', `threads?limit=${LIST_LIMIT}`)).threads
    render()
  })

  // ---- who -----------------------------------------------------------------------------
  // Authors and mentions are user ids. The name comes from a verified identity
  // in someone's awareness state (`ysync.userId`) when the server provides one.
  const nameOf = (userId) => {
    for (const state of awareness.getStates().values()) {
      if (state?.ysync?.userId === userId) return displayName(state) ?? userId
    }
    return userId
  }
  const mentionable = () => {
    const people = new Map()
    for (const [client, state] of awareness.getStates()) {
      const id = state?.ysync?.userId
      if (client !== doc.clientID && typeof id === 'string' && id) people.set(id, displayName(state) ?? id)
    }
    return [...people]
  }

  // ---- where ---------------------------------------------------------------------------
  const elementAt = (key) => {
    const map = typeof key === 'string' ? elements.get(key) : null
    return map instanceof Y.Map ? readElement(map) : null
  }
  const pinPosition = (anchor) => {
    if (anchor?.kind === 'element' && anchor.type === 'elements') {
      const el = elementAt(anchor.key)
      return el && { x: el.x + el.w - 6, y: el.y - 10 }
    }
    if (anchor?.kind === 'point' && Number.isFinite(anchor.x) && Number.isFinite(anchor.y)) {
      if (!anchor.element) return { x: anchor.x, y: anchor.y }
      const el = anchor.element.type === 'elements' ? elementAt(anchor.element.key) : null
      return el && { x: el.x + anchor.x, y: el.y + anchor.y }
    }
    return null
  }
  const describe = (anchor) => {
    const key = anchor?.kind === 'element' ? anchor.key : anchor?.element?.key
    if (key === undefined) return anchor?.kind === 'point' ? 'on the canvas' : 'on the room'
    const el = elementAt(key)
    return el ? `on a ${el.type === 'sticky' ? 'sticky note' : el.type === 'rect' ? 'rectangle' : 'ellipse'}` : 'on a deleted element'
  }

  // ---- drawing ------------------------------------------------------------------------
  const firstText = (thread) => clip(thread.comments.find((c) => !c.deletedAt)?.text ?? '', 60)

  const renderPins = () => {
    layer.replaceChildren(...threads.flatMap((thread) => {
      if (thread.resolved) return []
      const at = pinPosition(thread.anchor)
      if (!at) return []
      const replies = thread.comments.length - 1
      const g = document.createElementNS(SVG, 'g')
      Object.assign(g.dataset, { thread: thread.id })
      g.setAttribute('class', open?.threadId === thread.id ? 'pin open' : 'pin')
      g.setAttribute('transform', `translate(${at.x} ${at.y})`)
      g.setAttribute('tabindex', '0')
      g.setAttribute('role', 'button')
      g.setAttribute('aria-label', `Comment by ${nameOf(thread.createdBy)}: ${firstText(thread)}${replies ? `, ${replies} ${replies === 1 ? 'reply' : 'replies'}` : ''}`)
      const bubble = document.createElementNS(SVG, 'path')
      bubble.setAttribute('d', 'M0 0 L0 -22 A12 12 0 1 1 10 -6 Z')
      const count = document.createElementNS(SVG, 'text')
      Object.entries({ x: 12, y: -12, class: 'pin-count' }).forEach(([k, v]) => count.setAttribute(k, v))
      count.textContent = String(thread.comments.length)
      g.append(bubble, count)
      return [g]
    }))
  }

  const renderList = () => {
    const unresolved = threads.filter((t) => !t.resolved).length
    list.querySelector('summary').textContent = `Comments (${unresolved} open)`
    listBody.replaceChildren(...threads.map((thread) => html('li', {},
      html('button', {
        type: 'button',
        className: thread.resolved ? 'resolved' : '',
        textContent: `${thread.resolved ? '✓ ' : ''}${nameOf(thread.createdBy)} ${describe(thread.anchor)}: ${firstText(thread)}`,
        onclick: () => openThread(thread.id)
      }))))
    if (!threads.length) listBody.replaceChildren(html('li', { className: 'muted', textContent: 'No comments yet.' }))
  }

  const renderBody = (body) => (body?.content ?? []).map((p) => html('p', {}, ...(p.children ?? []).map((n) => {
    if (n.type === 'mention') return html('span', { className: 'mention', textContent: `@${nameOf(n.id)}`, title: n.id })
    if (n.type === 'link') return /^https?:\/\//.test(n.url) ? html('a', { href: n.url, rel: 'noopener noreferrer', target: '_blank', textContent: n.text || n.url }) : n.text || n.url
    const span = html('span', { textContent: n.text ?? '' })
    for (const style of ['bold', 'italic', 'strikethrough', 'code']) if (n[style]) span.classList.add(style)
    return span
  })))

  const reactionBar = (thread, comment) => {
    const shown = new Set([...Object.keys(comment.reactions ?? {}), ...QUICK_EMOJI])
    return html('div', { className: 'reactions', role: 'group', ariaLabel: 'Reactions' }, ...[...shown].map((emoji) => {
      const users = comment.reactions?.[emoji] ?? []
      const mine = users.includes(me())
      const b = html('button', {
        type: 'button',
        className: users.length ? 'reaction' : 'reaction none',
        textContent: users.length ? `${emoji} ${users.length}` : emoji,
        title: users.length ? users.map(nameOf).join(', ') : `React with ${emoji}`,
        onclick: () => act(() => mine
          ? call('DELETE', `threads/${thread.id}/comments/${comment.id}/reactions?emoji=${encodeURIComponent(emoji)}`)
          : call('POST', `threads/${thread.id}/comments/${comment.id}/reactions`, { emoji }))
      })
      Object.assign(b.dataset, { emoji })
      b.setAttribute('aria-pressed', String(mine))
      b.setAttribute('aria-label', `${emoji}${users.length ? `, ${users.length}` : ''}${mine ? ' (yours: take it back)' : ''}`)
      return b
    }))
  }

  const composer = (label, submitText, onSubmit) => {
    const input = html('textarea', { rows: 2, maxLength: 2000, placeholder: `${label}… (@user-id mentions)`, required: true })
    input.setAttribute('aria-label', label)
    const people = mentionable()
    const mentions = people.length
      ? html('div', { className: 'mention-picker', role: 'group', ariaLabel: 'Mention' }, ...people.map(([id, name]) =>
        html('button', { type: 'button', textContent: `@${name}`, onclick: () => { input.setRangeText(`@${id} `, input.selectionStart, input.selectionEnd, 'end'); input.focus() } })))
      : null
    const form = html('form', { className: 'composer' }, input, mentions, html('button', { type: 'submit', textContent: submitText }))
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      const text = input.value.trim()
      if (text) act(async () => { await onSubmit(textToBody(text)); input.value = '' })
    })
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) form.requestSubmit()
    })
    return form
  }

  const error = html('p', { className: 'thread-error', role: 'alert' })
  const act = async (work) => {
    error.textContent = ''
    try {
      const result = await work()
      await refresh()
      return result
    } catch (e) {
      error.textContent = `Not saved: ${e.message}`
    }
  }

  const renderPopover = () => {
    if (!open) {
      popover.hidden = true
      return
    }
    const thread = open.threadId ? threads.find((t) => t.id === open.threadId) : null
    if (open.threadId && !thread) { // deleted meanwhile
      open = null
      popover.hidden = true
      return
    }
    const focusedInside = popover.contains(document.activeElement)
    const form = thread ? thread.id : 'new'
    // What is being typed survives a redraw of the same thread (a reply came in).
    const typing = popover.dataset.form === form && popover.querySelector('textarea')
    const draft = typing && { value: typing.value, start: typing.selectionStart, end: typing.selectionEnd, focused: document.activeElement === typing }
    const at = pinPosition(thread ? thread.anchor : open.anchor) ?? { x: 40, y: 40 }
    const close = html('button', { type: 'button', className: 'close', textContent: '×', onclick: () => closePopover(true) })
    close.setAttribute('aria-label', 'Close the thread')
    const header = html('header', {}, html('strong', { textContent: thread ? `Thread ${describe(thread.anchor)}` : 'New comment' }))
    if (thread) {
      header.append(html('button', {
        type: 'button',
        className: 'resolve',
        textContent: thread.resolved ? 'Reopen' : 'Resolve',
        onclick: () => act(() => call('PATCH', `threads/${thread.id}`, { resolved: !thread.resolved }))
      }))
    }
    header.append(close)
    const items = thread
      ? html('ol', { className: 'comments' }, ...thread.comments.map((c) => {
        const li = html('li', { className: 'comment' },
          html('div', { className: 'meta' }, html('strong', { className: 'author', textContent: nameOf(c.author) }), ' ', html('time', { textContent: when(c.createdAt), dateTime: c.createdAt })),
          c.deletedAt ? html('p', { className: 'muted', textContent: 'Deleted' }) : html('div', { className: 'body' }, ...renderBody(c.body)),
          c.deletedAt ? null : reactionBar(thread, c))
        li.dataset.comment = c.id
        return li
      }))
      : null
    const compose = thread
      ? composer('Reply', 'Reply', (body) => call('POST', `threads/${thread.id}/comments`, { body }))
      : composer('Comment', 'Comment', async (body) => {
        const made = await call('POST', 'threads', { body, anchor: open.anchor })
        open = { threadId: made.id }
      })
    popover.replaceChildren(header, items, compose, error)
    popover.dataset.form = form
    popover.hidden = false
    // Beside the pin, but inside the visible part of the canvas (a narrow window
    // shows only a slice of it).
    const view = popover.parentElement
    const right = Math.min(WORLD.w, view.scrollLeft + view.clientWidth) - popover.offsetWidth - 8
    const left = Math.max(Math.min(at.x + 18, right), view.scrollLeft + 8)
    Object.assign(popover.style, { left: `${left}px`, top: `${Math.max(at.y - 10, 0)}px` })
    if (open.justOpened) popover.scrollIntoView({ block: 'nearest', inline: 'nearest' })
    const input = popover.querySelector('textarea')
    if (draft && draft.value && !open.justOpened) {
      input.value = draft.value
      input.setSelectionRange(draft.start, draft.end)
    }
    if (open.justOpened || draft?.focused || (focusedInside && !popover.contains(document.activeElement))) input.focus({ preventScroll: !open.justOpened })
    open.justOpened = false
  }

  const render = () => {
    renderPins()
    renderList()
    renderPopover()
  }

  // ---- opening and closing ------------------------------------------------------------
  const openThread = (threadId) => {
    open = { threadId, justOpened: true }
    list.open = false
    render()
  }
  const startThread = (anchor) => {
    open = { anchor, justOpened: true }
    render()
  }
  const closePopover = (refocus) => {
    const was = open?.threadId
    open = null
    render()
    if (!refocus) return
    const pin = was && layer.querySelector(`[data-thread="${was}"]`)
    if (pin) pin.focus()
    else svg.focus()
  }
  popover.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.stopPropagation()
      closePopover(true)
    }
  })

  const setPlacing = (on) => {
    placing = on
    tool.setAttribute('aria-pressed', String(on))
    svg.classList.toggle('placing', on)
  }
  tool.addEventListener('click', () => {
    // With one element selected the pin goes on it (the keyboard way); otherwise
    // the next click on the canvas places it.
    const selected = awareness.getLocalState()?.selection ?? []
    if (!placing && selected.length === 1 && elements.has(selected[0])) {
      startThread({ kind: 'element', type: 'elements', key: selected[0] })
      return
    }
    setPlacing(!placing)
  })
  // Capture: in placing mode a click places a pin instead of selecting or dragging.
  svg.addEventListener('pointerdown', (e) => {
    if (!placing || e.button !== 0) return
    e.preventDefault()
    e.stopPropagation()
    setPlacing(false)
    const box = svg.getBoundingClientRect()
    const p = { x: Math.round(e.clientX - box.left), y: Math.round(e.clientY - box.top) }
    const g = e.target.closest('.el')
    const el = g && elementAt(g.dataset.id)
    startThread(el
      ? { kind: 'point', x: p.x - el.x, y: p.y - el.y, element: { type: 'elements', key: g.dataset.id } }
      : { kind: 'point', ...p })
  }, true)
  svg.addEventListener('keydown', (e) => {
    if (placing && e.key === 'Escape') setPlacing(false)
  }, true)
  // C on a focused element starts a thread on it; Tab reaches the pins after the elements.
  svg.setAttribute('aria-label', `${svg.getAttribute('aria-label')} C comments on it; Tab on to the comment pins, Enter opens one.`)
  svg.addEventListener('keydown', (e) => {
    const g = e.target.closest?.('.el')
    if (g && e.key.toLowerCase() === 'c' && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault()
      startThread({ kind: 'element', type: 'elements', key: g.dataset.id })
    }
  })
  // A click on the empty canvas closes the thread (pins stop their own clicks).
  svg.addEventListener('pointerdown', (e) => {
    if (open && !e.target.closest('.el')) closePopover(false)
  })
  layer.addEventListener('pointerdown', (e) => {
    const pin = e.target.closest('.pin')
    if (!pin || placing) return
    e.stopPropagation() // not a click on the canvas below
    e.preventDefault() // the focus goes to the thread's reply box, not the pin
    openThread(pin.dataset.thread)
  })
  layer.addEventListener('keydown', (e) => {
    const pin = e.target.closest('.pin')
    if (pin && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault()
      e.stopPropagation()
      openThread(pin.dataset.thread)
    }
  })

  // ---- live --------------------------------------------------------------------------
  let frame = 0
  const later = () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; renderPins(); if (open && !popover.contains(document.activeElement)) renderPopover() })
  }
  elements.observeDeep(later) // pins follow their elements
  follow({
    onOpen: refresh, // first load, and whatever was missed while the feed was down
    onEvent: ({ type }) => {
      if (CHANGES.test(type) || type === 'reset') refresh()
    }
  })
  window.addEventListener('online', refresh)
}
