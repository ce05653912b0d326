// The presence bar: one avatar per awareness state that shows a person
// (verified `ysync` identity first, else the client's `user`), you first.

import { displayAvatar, displayColor, displayName, initials } from '../shared/names.js'

const MAX_SHOWN = 8

export const mountPresence = ({ doc, awareness, element }) => {
  const render = () => {
    const people = [...awareness.getStates()]
      .map(([client, state]) => ({ client, state, name: displayName(state) }))
      .filter((p) => p.name !== null)
      .sort((a, b) => (b.client === doc.clientID) - (a.client === doc.clientID) || a.client - b.client)
    const items = people.slice(0, MAX_SHOWN).map(({ client, state, name }) => {
      const li = document.createElement('li')
      const you = client === doc.clientID
      li.className = you ? 'avatar you' : 'avatar'
      Object.assign(li.dataset, { client, name })
      li.title = you ? `${name} (you)` : name
      li.style.background = displayColor(state)
      const avatar = displayAvatar(state)
      if (avatar) {
        const img = document.createElement('img')
        Object.assign(img, { src: avatar, alt: '' })
        li.append(img)
      } else {
        li.textContent = initials(name)
      }
      li.setAttribute('aria-label', li.title)
      return li
    })
    if (people.length > MAX_SHOWN) {
      const more = document.createElement('li')
      more.className = 'avatar more'
      more.textContent = `+${people.length - MAX_SHOWN}`
      more.title = people.slice(MAX_SHOWN).map((p) => p.name).join(', ')
      items.push(more)
    }
    element.replaceChildren(...items)
  }
  awareness.on('change', render)
  render()
}
