/** Call `fn` at most once per `interval` ms: at once, then once more after the last call. */
export const throttled = (fn, interval) => {
  let last = -Infinity
  let timer = null
  const run = () => {
    timer = null
    last = performance.now()
    fn()
  }
  return () => {
    if (timer !== null) return
    const wait = last + interval - performance.now()
    if (wait <= 0) run()
    else timer = setTimeout(run, wait)
  }
}
