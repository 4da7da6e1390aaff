/**
 * Python's text forms of numbers, as ForML's TOML writer (toml 0.10.2), its keys (`str(value)`) and MLflow's file
 * store print them. Hand-written because no JavaScript library prints Python's `repr(float)`, and a key or a tag
 * that prints a number differently is a different key or tag.
 *
 * @internal
 */

/** `repr(float)` of Python 3: shortest round-trip digits, exponent form below 1e-4 and from 1e16 on. */
export const floatRepr = (x: number): string => {
  if (Number.isNaN(x)) return "nan"
  if (x === Infinity) return "inf"
  if (x === -Infinity) return "-inf"
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0"
  const sign = x < 0 ? "-" : ""
  // toExponential() without an argument yields the shortest digits that read back as x, like Python's repr.
  const [mantissa = "", exponent = "0"] = Math.abs(x).toExponential().split("e")
  const digits = mantissa.replace(".", "")
  const exp = Number(exponent)
  const point = exp + 1
  if (point <= -4 || point > 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits
    const abs = Math.abs(exp)
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${abs < 10 ? `0${abs}` : abs}`
  }
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`
  if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`
}

/**
 * `str(value)` of a JS number read as Python would hold it: an integral number as a Python `int`, any other as a
 * `float`. A JS number cannot tell `1` from `1.0`; integral numbers are taken as integers.
 */
export const numberStr = (x: number): string => (Number.isInteger(x) ? BigInt(x).toString() : floatRepr(x))

/** `n` in lower-case hexadecimal, zero-padded to `width` digits (for `\x`, `\u` and `\U` escapes). */
export const hex = (n: number, width: number): string => n.toString(16).padStart(width, "0")
