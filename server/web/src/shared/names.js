// Who an awareness state belongs to. ysync stamps the verified identity into
// each state under `ysync` ({userId, name, role, color?, avatar?}); without a
// token it is `anonymous`, and then (as for servers that stamp nothing) the
// client's own `user` fields are what there is to show.

const HEX = /^#[0-9a-fA-F]{6}$/

const verified = (state) => (state?.ysync?.anonymous ? undefined : state?.ysync)

/** The display name of an awareness state, or null for states that show no person. */
export const displayName = (state) => {
  const name = verified(state)?.name ?? state?.user?.name
  return typeof name === 'string' && name.trim() ? name.trim().slice(0, 40) : null
}

/** A #rrggbb color for the state (y-prosemirror accepts only that form). */
export const displayColor = (state) => {
  const color = verified(state)?.color ?? state?.user?.color
  return typeof color === 'string' && HEX.test(color) ? color : '#6b7280'
}

/** An http(s) avatar URL from the verified identity only (clients cannot pick one for others). */
export const displayAvatar = (state) => {
  const url = state?.ysync?.avatar
  return typeof url === 'string' && /^https?:\/\//.test(url) ? url : null
}

export const initials = (name) =>
  name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0].toUpperCase()).join('') || '?'

export const PALETTE = ['#e11d48', '#ea580c', '#ca8a04', '#16a34a', '#0891b2', '#2563eb', '#7c3aed', '#c026d3']
