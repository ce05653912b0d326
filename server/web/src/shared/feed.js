// A room's event feed (GET /api/rooms/{room}/events, Server-Sent Events) read with
// fetch(), not EventSource: EventSource cannot send the Authorization header that
// --auth jwt needs. Reconnects with Last-Event-ID after a pause that grows from 1 s
// to 10 s (offline: once back online); the server answers a gap it cannot replay
// with a `reset` event.

import { httpUrl } from './config.js'
import { bearer } from './tokens.js'

const MIN_PAUSE = 1000
const MAX_PAUSE = 10000

/** The /api path of a room (a `/` in its name is written %2F, as the API wants). */
export const roomPath = (room) => `api/rooms/${encodeURIComponent(room)}`

/**
 * Follow `room`'s events: `onEvent({id, type, data})` for each (data is the parsed
 * `{type, room, data, at}` body), `onOpen()` each time the stream (re)starts.
 * Returns `{close()}`. `token()` gives the current token (or null).
 */
export const followRoom = (room, { token, onEvent, onOpen = () => {}, onError = () => {} }) => {
  let lastId = null
  let closed = false
  let controller = null
  let pause = MIN_PAUSE

  const dispatch = (block) => {
    let id = null
    let type = 'message'
    const data = []
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'id') id = value
      else if (field === 'event') type = value
      else if (field === 'data') data.push(value)
    }
    if (id !== null) lastId = id
    if (!data.length) return
    let body = null
    try {
      body = JSON.parse(data.join('\n'))
    } catch {
      return // not ours to show
    }
    onEvent({ id, type, data: body })
  }

  const run = async () => {
    while (!closed) {
      controller = new AbortController()
      try {
        const headers = { Accept: 'text/event-stream', ...bearer(token()) }
        if (lastId) headers['Last-Event-ID'] = lastId
        const response = await fetch(httpUrl(`${roomPath(room)}/events`), { headers, signal: controller.signal, cache: 'no-store' })
        if (!response.ok) throw new Error(`event feed: HTTP ${response.status}`)
        pause = MIN_PAUSE
        onOpen()
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
        let buffer = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buffer = (buffer + value).replace(/\r\n?/g, '\n')
          let end
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            dispatch(buffer.slice(0, end))
            buffer = buffer.slice(end + 2)
          }
        }
      } catch (error) {
        if (closed) return
        onError(error)
      }
      if (closed) return
      await new Promise((resolve) => setTimeout(resolve, pause))
      pause = Math.min(pause * 2, MAX_PAUSE)
      // Offline, wait to be back rather than fail again and again.
      if (!navigator.onLine) await new Promise((resolve) => window.addEventListener('online', resolve, { once: true }))
    }
  }
  run()
  return {
    close () {
      closed = true
      controller?.abort()
    }
  }
}
