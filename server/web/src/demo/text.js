// The text view: ProseMirror bound to the room's `prosemirror` Y.XmlFragment with
// y-prosemirror, remote carets and selections labelled with each person's name.
//
// The caret goes in the awareness field `textCursor`: `cursor` is the canvas
// pointer ({x, y}). y-prosemirror 1.3.7 writes its caret under the field it is
// given but reads every caret (its own and others') from `cursor`, so it gets a
// view of the awareness in which each state's caret is under `cursor`: ours from
// `textCursor`, and a caret another y-prosemirror app put in `cursor` is kept.

import { baseKeymap, setBlockType, toggleMark } from 'prosemirror-commands'
import { keymap } from 'prosemirror-keymap'
import { Schema } from 'prosemirror-model'
import { schema as basic } from 'prosemirror-schema-basic'
import { addListNodes, liftListItem, sinkListItem, splitListItem, wrapInList } from 'prosemirror-schema-list'
import { EditorState } from 'prosemirror-state'
import { EditorView } from 'prosemirror-view'
import { redo, undo, yCursorPlugin, ySyncPlugin, yUndoPlugin } from 'y-prosemirror'
import { displayColor, displayName } from '../shared/names.js'

const CARET_FIELD = 'textCursor'

const schema = new Schema({
  nodes: addListNodes(basic.spec.nodes, 'paragraph block*', 'block'),
  marks: basic.spec.marks
})

const caretOf = (state) => state[CARET_FIELD] ?? (state.cursor?.anchor ? state.cursor : null)
const withCaret = (state) => state && { ...state, user: { ...state.user }, cursor: caretOf(state) }

/** The awareness as y-prosemirror's cursor plugin reads it (see above). */
const caretAwareness = (awareness) => ({
  getStates: () => new Map([...awareness.getStates()].map(([client, state]) => [client, withCaret(state)])),
  getLocalState: () => withCaret(awareness.getLocalState()),
  setLocalStateField: (field, value) => awareness.setLocalStateField(field, value),
  on: (name, f) => awareness.on(name, f),
  off: (name, f) => awareness.off(name, f)
})

const caret = (awareness) => (_user, client) => {
  const state = awareness.getStates().get(client)
  const name = displayName(state) ?? `Client ${client}`
  const color = displayColor(state)
  const span = document.createElement('span')
  span.className = 'ProseMirror-yjs-cursor'
  span.style.borderColor = color
  Object.assign(span.dataset, { client, name })
  const label = document.createElement('div')
  label.style.backgroundColor = color
  label.textContent = name
  span.append('\u2060', label, '\u2060')
  return span
}

const TOOLS = [
  ['Bold', 'B', toggleMark(schema.marks.strong)],
  ['Italic', 'I', toggleMark(schema.marks.em)],
  ['Heading', 'H1', setBlockType(schema.nodes.heading, { level: 1 })],
  ['Subheading', 'H2', setBlockType(schema.nodes.heading, { level: 2 })],
  ['Paragraph', '¶', setBlockType(schema.nodes.paragraph)],
  ['Bullet list', '• List', wrapInList(schema.nodes.bullet_list)],
  ['Undo', '↶', undo],
  ['Redo', '↷', redo]
]

export const mountText = ({ doc, awareness }) => {
  const fragment = doc.getXmlFragment('prosemirror')
  const view = new EditorView(document.getElementById('editor'), {
    state: EditorState.create({
      schema,
      plugins: [
        ySyncPlugin(fragment),
        yCursorPlugin(caretAwareness(awareness), { cursorBuilder: caret(awareness) }, CARET_FIELD),
        yUndoPlugin(),
        keymap({
          'Mod-z': undo,
          'Mod-y': redo,
          'Mod-Shift-z': redo,
          'Mod-b': toggleMark(schema.marks.strong),
          'Mod-i': toggleMark(schema.marks.em),
          Enter: splitListItem(schema.nodes.list_item),
          Tab: sinkListItem(schema.nodes.list_item),
          'Shift-Tab': liftListItem(schema.nodes.list_item)
        }),
        keymap(baseKeymap)
      ]
    }),
    attributes: { 'aria-label': 'Shared text', role: 'textbox', 'aria-multiline': 'true' }
  })
  const toolbar = document.getElementById('text-toolbar')
  for (const [title, label, command] of TOOLS) {
    const b = document.createElement('button')
    Object.assign(b, { type: 'button', title, textContent: label })
    b.addEventListener('mousedown', (e) => e.preventDefault()) // keep the editor's selection
    b.addEventListener('click', () => {
      command(view.state, view.dispatch, view)
      view.focus()
    })
    toolbar.append(b)
  }
  return view
}
