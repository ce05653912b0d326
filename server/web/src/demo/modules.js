// Optional parts of the demo, each shown only when the server provides what it
// needs: the server lists its features in the page config (`features`), and a
// module mounts when its feature is there. Element locks, comment threads and
// version history come here as their server sides land; none is listed yet, so
// none is shown (rather than faked).
//
// A module: {feature: 'locks', mount: (context) => void}, where context is
// {doc, provider, awareness, room, token, config}.

const MODULES = []

export const mountModules = (context) => {
  const available = new Set(context.config.features ?? [])
  for (const module of MODULES) {
    if (available.has(module.feature)) module.mount(context)
  }
}
