// Who an awareness state belongs to. The server will stamp a verified identity
// into each state under `ysync` ({userId, name, role, color?, avatar?}); until
// then, and for servers that do not, the client's own `user` fields are used.

const HEX = /^#[0-9a-fA-F]{6}$/

/** The display name of an awareness state, or null for states that show no person. */
export const displayName = (state) => {
  const name = state?.ysync?.name ?? state?.user?.name
  return typeof name === 'string' && name.trim() ? name.trim().slice(0, 40) : null
}

/** A #rrggbb color for the state (y-prosemirror accepts only that form). */
export const displayColor = (state) => {
  const color = state?.ysync?.color ?? state?.user?.color
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
