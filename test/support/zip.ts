/** Raw zip bytes written field by field, for crafted entries (hostile names, modes, methods, sizes) no zip writer would produce. */
import * as zlib from "node:zlib"

export interface RawEntry {
  readonly name: string
  readonly data?: Buffer | undefined
  /** 0 stored, 8 deflate (default), or any other method number. */
  readonly method?: number | undefined
  /** Written as the compressed data instead of compressing `data`. */
  readonly raw?: Buffer | undefined
  readonly crc?: number | undefined
  readonly size?: number | undefined
  /** Unix mode in the external attributes (a symlink: 0o120777); by default 0o40755 for a name ending in `/`, else 0o100644. */
  readonly mode?: number | undefined
  /** By default 0x0314: made on Unix (so modes count), spec 2.0. */
  readonly versionMadeBy?: number | undefined
  /** General purpose flags; bit 11 (UTF-8 names) is always set. */
  readonly flags?: number | undefined
}

const crc32 = (data: Buffer): number => zlib.crc32(data) >>> 0

/** A zip with the entries as given, in order, with a central directory and an end record and nothing else. */
export const rawZip = (entries: ReadonlyArray<RawEntry>): Buffer => {
  const locals: Array<Buffer> = []
  const centrals: Array<Buffer> = []
  let offset = 0
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0)
    const method = e.method ?? 8
    const body = e.raw ?? (method === 8 ? zlib.deflateRawSync(data) : data)
    const name = Buffer.from(e.name, "utf-8")
    const crc = e.crc ?? crc32(data)
    const size = e.size ?? data.length
    const flags = (e.flags ?? 0) | 0x800
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt16LE(flags, 6)
    local.writeUInt16LE(method, 8)
    local.writeUInt16LE(0, 10)
    local.writeUInt16LE(0x21, 12)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(body.length, 18)
    local.writeUInt32LE(size, 22)
    local.writeUInt16LE(name.length, 26)
    local.writeUInt16LE(0, 28)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE(e.versionMadeBy ?? 0x0314, 4)
    central.writeUInt16LE(20, 6)
    central.writeUInt16LE(flags, 8)
    central.writeUInt16LE(method, 10)
    central.writeUInt16LE(0, 12)
    central.writeUInt16LE(0x21, 14)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(body.length, 20)
    central.writeUInt32LE(size, 24)
    central.writeUInt16LE(name.length, 28)
    central.writeUInt16LE(0, 30)
    central.writeUInt16LE(0, 32)
    central.writeUInt16LE(0, 34)
    central.writeUInt16LE(0, 36)
    central.writeUInt32LE(((e.mode ?? (e.name.endsWith("/") ? 0o40755 : 0o100644)) << 16) >>> 0, 38)
    central.writeUInt32LE(offset, 42)
    locals.push(local, name, body)
    centrals.push(central, name)
    offset += local.length + name.length + body.length
  }
  const cd = Buffer.concat(centrals)
  const eocd = Buffer.alloc(22)
  eocd.writeUInt32LE(0x06054b50, 0)
  eocd.writeUInt16LE(entries.length, 8)
  eocd.writeUInt16LE(entries.length, 10)
  eocd.writeUInt32LE(cd.length, 12)
  eocd.writeUInt32LE(offset, 16)
  return Buffer.concat([...locals, cd, eocd])
}
