// The History panel: the room's versions (the versions API,
// /api/rooms/{room}/versions), newest first, with "Save version", a read-only
// preview of a version's canvas, and restore. Versions live on the server; a
// restore is a server edit, so every page (this one too) gets the version's
// content through the document, as any other edit. The list reloads when the
// room's feed reports version.created / version.restored (and after a reset),
// while the panel is open; a closed panel reloads when next opened.

import { oneAtATime, roomApi } from '../shared/api.js'
import { roleIn } from '../shared/tokens.js'
import { createElementNode, paintElement, readElement } from './canvas.js'

const LIST_LIMIT = 50 // the newest 50 (one page)
const CHANGES = /^version\./
const KINDS = { named: 'Named', auto: 'Automatic', 'pre-restore': 'Before a restore', restore: 'Restore' }

const html = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props)
  node.append(...children.filter((c) => c != null))
  return node
}

/** Seconds since the epoch -> a short local date and time. */
const when = (seconds) => {
  const t = new Date(seconds * 1000)
  return Number.isNaN(t.getTime()) ? '' : t.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' })
}

// No author: an automatic version (the server made it), or auth is off (no user ids).
const authorOf = (v) => v.author ?? (v.kind === 'auto' ? 'the server' : 'anonymous')

export const mountHistory = ({ room, token, follow }) => {
  const tool = document.getElementById('history-tool')
  const panel = document.getElementById('history-panel')
  const list = document.getElementById('history-items')
  const form = document.getElementById('version-form')
  const nameInput = document.getElementById('version-name')
  const error = document.getElementById('history-error')
  const live = document.getElementById('canvas')
  const preview = document.getElementById('preview-canvas')
  const bar = document.getElementById('preview-bar')
  const viewport = document.getElementById('canvas-viewport')
  const call = roomApi(room, token)
  let versions = []
  let stale = true // the list may be out of date (it loads when the panel opens)
  let previewing = null // the version shown read-only, with its content
  let confirming = null // the id of the version whose restore waits for a yes

  tool.hidden = false
  // With a viewer's token the server refuses saving and restoring: not offered.
  const canEdit = () => roleIn(token(), room) !== 'viewer'

  const fail = (e) => { error.textContent = e.message }
  const reload = oneAtATime(async () => {
    try {
      versions = (await call('GET', `versions?limit=${LIST_LIMIT}`)).versions
      stale = false
      error.textContent = ''
      renderList()
    } catch (e) {
      fail(new Error(`Could not load the versions: ${e.message}`))
    }
  })

  // ---- the list --------------------------------------------------------------------
  const row = (v) => {
    const kind = KINDS[v.kind] ?? v.kind
    const li = html('li', { className: `version ${v.automatic ? 'automatic' : 'named'}` },
      html('div', { className: 'meta' },
        html('strong', { className: 'name', textContent: v.name }), ' ',
        html('span', { className: 'kind', textContent: kind })),
      html('div', { className: 'sub' },
        html('span', { className: 'author', textContent: authorOf(v) }), ' · ',
        html('time', { textContent: when(v.created_at), dateTime: new Date(v.created_at * 1000).toISOString() })))
    li.dataset.version = v.id
    li.dataset.kind = v.kind
    const label = `“${v.name}”`
    const actions = html('div', { className: 'actions' })
    if (confirming === v.id) {
      actions.append(
        html('span', { className: 'confirm', textContent: `Restore ${label} for everyone? The current state is kept as a version.` }),
        html('button', { type: 'button', className: 'yes', textContent: 'Restore', onclick: () => restore(v) }),
        html('button', { type: 'button', className: 'no', textContent: 'Cancel', onclick: () => askRestore(null) }))
    } else {
      const show = html('button', { type: 'button', className: 'preview', textContent: previewing?.id === v.id ? 'Previewing' : 'Preview', onclick: () => showPreview(v) })
      show.setAttribute('aria-label', `Preview ${label}`)
      show.setAttribute('aria-pressed', String(previewing?.id === v.id))
      actions.append(show)
      if (canEdit()) {
        const back = html('button', { type: 'button', className: 'restore', textContent: 'Restore…', onclick: () => askRestore(v.id) })
        back.setAttribute('aria-label', `Restore ${label}…`)
        actions.append(back)
      }
    }
    li.append(actions)
    return li
  }
  const renderList = () => {
    const focusedClass = list.contains(document.activeElement) && document.activeElement.className
    const focusedRow = document.activeElement?.closest?.('[data-version]')?.dataset.version
    list.replaceChildren(...versions.map(row))
    if (!versions.length) list.replaceChildren(html('li', { className: 'muted', textContent: 'No versions yet. Save one above.' }))
    // The focus stays on the same button of the same version across a redraw.
    if (focusedRow) list.querySelector(`[data-version="${focusedRow}"] .${focusedClass || 'preview'}`)?.focus()
  }

  // ---- saving and restoring --------------------------------------------------------
  form.hidden = !canEdit()
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const name = nameInput.value.trim()
    if (!name) return
    try {
      await call('POST', 'versions', { name })
      nameInput.value = ''
      error.textContent = ''
    } catch (err) {
      fail(new Error(`Not saved: ${err.message}`))
    }
    await reload()
  })
  const askRestore = (id) => {
    confirming = id
    renderList()
    const buttons = id && list.querySelector(`[data-version="${id}"]`)
    buttons?.querySelector('.no')?.focus()
  }
  const restore = async (v) => {
    confirming = null
    try {
      await call('POST', `versions/${encodeURIComponent(v.id)}/restore`)
      error.textContent = ''
      closePreview()
    } catch (err) {
      fail(new Error(`Not restored: ${err.message}`))
    }
    await reload()
    list.querySelector('[data-version] .preview')?.focus()
  }

  // ---- preview -------------------------------------------------------------------------
  // The version's elements drawn on a canvas of their own, which takes the live
  // canvas's place (the live one keeps following the room, hidden).
  const showPreview = async (v) => {
    try {
      const full = await call('GET', `versions/${encodeURIComponent(v.id)}`)
      const elements = full.types?.elements === 'map' ? full.content.elements : {}
      previewing = { id: v.id, name: v.name }
      const layer = preview.querySelector('#preview-elements')
      layer.replaceChildren(...Object.keys(elements ?? {}).sort().flatMap((id) => {
        const fields = elements[id]
        if (!fields || typeof fields !== 'object') return []
        const g = createElementNode(id)
        paintElement(g, readElement(new Map(Object.entries(fields))))
        g.removeAttribute('tabindex')
        g.setAttribute('role', 'img')
        return [g]
      }))
      const count = layer.children.length
      preview.setAttribute('aria-label', `Preview of version “${v.name}”, read-only: ${count} ${count === 1 ? 'element' : 'elements'}`)
      bar.querySelector('.what').textContent = `Preview of “${v.name}” (${when(v.created_at)}), read-only`
      bar.querySelector('.restore').hidden = !canEdit()
      showing(true)
      error.textContent = ''
      renderList()
    } catch (e) {
      fail(new Error(`No preview: ${e.message}`))
    }
  }
  // The attribute, not the property: SVG elements have no `hidden` property.
  const showing = (on) => {
    live.toggleAttribute('hidden', on)
    preview.toggleAttribute('hidden', !on)
    bar.hidden = !on
    viewport.classList.toggle('previewing', on)
  }
  const closePreview = () => {
    if (!previewing) return
    previewing = null
    showing(false)
    renderList()
  }
  bar.querySelector('.back').addEventListener('click', () => {
    closePreview()
    tool.focus()
  })
  bar.querySelector('.restore').addEventListener('click', () => {
    if (!previewing) return
    setOpen(true)
    askRestore(previewing.id)
  })

  // ---- opening and closing --------------------------------------------------------------
  const setOpen = (on) => {
    panel.hidden = !on
    tool.setAttribute('aria-expanded', String(on))
    if (on && stale) reload()
  }
  tool.addEventListener('click', () => {
    setOpen(panel.hidden)
    if (!panel.hidden) (canEdit() ? nameInput : panel).focus()
  })
  panel.querySelector('.close').addEventListener('click', () => {
    setOpen(false)
    tool.focus()
  })
  panel.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return
    e.stopPropagation()
    if (confirming) askRestore(null)
    else {
      setOpen(false)
      tool.focus()
    }
  })
  bar.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closePreview()
  })

  // ---- live -----------------------------------------------------------------------------
  const changed = () => {
    stale = true
    if (!panel.hidden) reload()
  }
  follow({
    onOpen: changed, // whatever was missed while the feed was down
    onEvent: ({ type }) => {
      if (CHANGES.test(type) || type === 'reset') changed()
    }
  })
  window.addEventListener('online', changed)
}
