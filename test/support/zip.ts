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
    // The fields from "flags" to "extra field length", the same in the local and the central header.
    const shared = (header: Buffer, at: number) => {
      header.writeUInt16LE(flags, at)
      header.writeUInt16LE(method, at + 2)
      header.writeUInt16LE(0, at + 4) // time
      header.writeUInt16LE(0x21, at + 6) // date
      header.writeUInt32LE(crc, at + 8)
      header.writeUInt32LE(body.length, at + 12)
      header.writeUInt32LE(size, at + 16)
      header.writeUInt16LE(name.length, at + 20)
      header.writeUInt16LE(0, at + 22) // extra field length
      return header
    }
    const local = shared(Buffer.alloc(30), 6)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4)
    const central = shared(Buffer.alloc(46), 8)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE(e.versionMadeBy ?? 0x0314, 4)
    central.writeUInt16LE(20, 6)
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
