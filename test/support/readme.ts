/**
 * The ```ts blocks of README.md, with where they sit and whether they are marked `<!-- not run: reason -->`.
 */

export interface Block {
  /** 1-based, in README order. */
  readonly index: number
  /** The README line of the opening fence. */
  readonly line: number
  /** The heading the block sits under. */
  readonly heading: string
  readonly code: string
  /** Why the block is not run, when its fence is preceded by `<!-- not run: reason -->`. */
  readonly notRun: string | undefined
  /** A block that imports vitest is a test file, run by vitest; any other is a program, run by node. */
  readonly isTest: boolean
}

const NOT_RUN = /^<!--\s*not run:\s*(.*?)\s*-->$/

/** The ```ts blocks of a Markdown text, in order. */
export const readmeBlocks = (markdown: string): ReadonlyArray<Block> => {
  const lines = markdown.split("\n")
  const blocks: Array<Block> = []
  let heading = ""
  let previous = ""
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (line.startsWith("```")) {
      const end = lines.findIndex((l, j) => j > i && l.startsWith("```"))
      if (end < 0) throw new Error(`README.md:${i + 1}: a fence that is never closed`)
      if (line.trim() === "```ts") {
        const code = lines.slice(i + 1, end).join("\n") + "\n"
        const reason = NOT_RUN.exec(previous.trim())?.[1]
        blocks.push({
          index: blocks.length + 1,
          line: i + 1,
          heading,
          code,
          notRun: reason,
          isTest: /from "(@effect\/)?vitest"/.test(code)
        })
      }
      i = end
      previous = ""
      continue
    }
    if (line.startsWith("#")) heading = line.replace(/^#+\s*/, "")
    if (line.trim() !== "") previous = line
  }
  return blocks
}
