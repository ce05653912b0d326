// Optional parts of the demo, each shown only when the server provides what it
// needs: the server lists its features in the page config (`features`), and a
// module mounts when its feature is there. Element locks come here as their server
// side lands; until then they are not listed, so not shown (rather than faked).
//
// A module: {feature: 'comments', mount: (context) => void}, where context is
// {doc, provider, awareness, room, token: () => current token, me: () => user id, config,
// follow({onOpen, onEvent})}: `follow` shares one event-feed connection between modules.

import { followRoom } from '../shared/feed.js'
import { mountComments } from './comments.js'
import { mountHistory } from './history.js'

const MODULES = [
  { feature: 'comments', mount: mountComments },
  { feature: 'versions', mount: mountHistory }
]

/** One feed for the page, opened by the first module that follows it. */
const sharedFeed = (room, token) => {
  const listeners = []
  let feed = null
  return (listener) => {
    listeners.push(listener)
    feed ??= followRoom(room, {
      token,
      onOpen: () => listeners.forEach((l) => l.onOpen?.()),
      onEvent: (event) => listeners.forEach((l) => l.onEvent?.(event))
    })
  }
}

export const mountModules = (context) => {
  const available = new Set(context.config.features ?? [])
  const follow = sharedFeed(context.room, context.token)
  for (const module of MODULES) {
    if (available.has(module.feature)) module.mount({ ...context, follow })
  }
}
