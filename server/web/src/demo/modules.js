// Optional parts of the demo, each shown only when the server provides what it
// needs: the server lists its features in the page config (`features`), and a
// module mounts when its feature is there. Element locks and version history come
// here as their server sides land; until then they are not listed, so not shown
// (rather than faked).
//
// A module: {feature: 'comments', mount: (context) => void}, where context is
// {doc, provider, awareness, room, token: () => current token, me: () => user id, config}.

import { mountComments } from './comments.js'

const MODULES = [{ feature: 'comments', mount: mountComments }]

export const mountModules = (context) => {
  const available = new Set(context.config.features ?? [])
  for (const module of MODULES) {
    if (available.has(module.feature)) module.mount(context)
  }
}
