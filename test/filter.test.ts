/**
 * Filter: how clauses render to MLflow filter strings (backticked keys, the value quote the value lacks) and how
 * `matches` evaluates them in-process, checked against the filter strings and results recorded from MLflow 2.17.2.
 */
import { Either } from "effect"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import * as Filter from "../src/mlflow/Filter.js"
import { parseRecordedFilter } from "./contract/mlflow.js"
import { sharedPath } from "./support/shared.js"

interface WireLine {
  readonly scenario: string
  readonly step: string
  readonly request: { readonly path: string; readonly json?: Record<string, unknown> }
  readonly response: { readonly status: number; readonly json?: Record<string, unknown> | null }
}

const recordings = ["mlflow-2.17.2-sqlite.jsonl", "mlflow-2.17.2-filestore.jsonl", "mlflow-3.x-sqlite.jsonl"].map((
  file
) =>
  readFileSync(sharedPath("mlflow-wire", file), "utf-8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(1)
    .map((l) => JSON.parse(l) as WireLine)
)
const sqlite = recordings[0]!

/** Every filter string sent to runs/search in a recording, with the run names returned. */
const runFilters = (lines: ReadonlyArray<WireLine>) =>
  lines
    .filter((l) => l.request.path.endsWith("/runs/search") && typeof l.request.json?.["filter"] === "string")
    .map((l) => ({
      scenario: l.scenario,
      step: l.step,
      text: String(l.request.json?.["filter"]),
      status: l.response.status,
      names: ((l.response.json?.["runs"] ?? []) as ReadonlyArray<{ readonly info: { readonly run_name: string } }>)
        .map((r) => r.info.run_name)
    }))

const render = (filter: Filter.Filter): string => Either.getOrThrow(Filter.render(filter))

describe("Filter.render", () => {
  it("renders nothing for no clause", () => {
    expect(render(Filter.none)).toBe("")
    expect(render(Filter.and())).toBe("")
  })

  it("puts tag keys in backticks and prefixes attributes", () => {
    expect(render(Filter.and(Filter.tag("forml.level", "release")))).toBe("tags.`forml.level` = 'release'")
    expect(render(Filter.and(Filter.tag("ns/sub key:x", "v")))).toBe("tags.`ns/sub key:x` = 'v'")
    // `attribute.`: run searches accept it beside `attributes.`/`attr.`/`run.`, experiment searches accept only it
    // (MLflow 2.17.2 and 3.x answer `attributes.name` with "Invalid entity type 'attributes'")
    expect(render(Filter.and(Filter.attribute("run_name", "r1")))).toBe("attribute.run_name = 'r1'")
    expect(render(Filter.and(Filter.attribute("name", "x@it's")))).toBe(`attribute.name = "x@it's"`)
    expect(render(Filter.and(Filter.tag("k", "v", "!="), Filter.attribute("status", "RUNNING")))).toBe(
      "tags.`k` != 'v' AND attribute.status = 'RUNNING'"
    )
  })

  it("quotes a value with the quote kind it lacks", () => {
    expect(render(Filter.and(Filter.tag("k", "it's")))).toBe(`tags.\`k\` = "it's"`)
    expect(render(Filter.and(Filter.tag("k", "say \"hi\"")))).toBe(`tags.\`k\` = 'say "hi"'`)
    expect(render(Filter.and(Filter.tag("k", "")))).toBe("tags.`k` = ''")
    expect(render(Filter.and(Filter.tag("k", "a`b")))).toBe("tags.`k` = 'a`b'")
  })

  it("rejects a value holding both quote kinds, since MLflow filters have no escapes", () => {
    const both = Filter.render(Filter.and(Filter.tag("ok", "x"), Filter.tag("q", `a'b"c`)))
    expect(Either.isLeft(both)).toBe(true)
    if (Either.isLeft(both)) expect(both.left).toMatchObject({ _tag: "InvalidInput", kind: "Filter", input: `a'b"c` })
    expect(Either.isLeft(Filter.validate(Filter.and(Filter.attribute("run_name", `'"`))))).toBe(true)
  })

  it("rejects keys it cannot quote", () => {
    for (
      const clause of [
        Filter.tag("", "v"),
        Filter.tag("a`b", "v"),
        Filter.attribute("run name", "v"),
        Filter.attribute("a.b", "v"),
        Filter.attribute("", "v")
      ]
    ) {
      const result = Filter.validate(Filter.and(clause))
      expect(Either.isLeft(result), JSON.stringify(clause)).toBe(true)
      if (Either.isLeft(result)) expect(result.left._tag).toBe("InvalidInput")
    }
    const ok = Filter.and(Filter.tag("forml.level", "release"))
    expect(Filter.validate(ok)).toEqual(Either.right(ok))
  })

  it("reproduces every canonical filter string the recordings sent, and round-trips the others", () => {
    const canonicalClause = /^(tags\.`[^`]+`|attributes\.[a-z_]+) (=|!=) ('[^']*'|"[^"]*")$/
    let canonical = 0
    let roundTripped = 0
    for (const f of runFilters(sqlite)) {
      const filter = parseRecordedFilter(f.text)
      if (filter === undefined) continue
      const rendered = render(filter)
      expect(parseRecordedFilter(rendered), f.step).toEqual(filter)
      roundTripped++
      const parts = f.text === "" ? [] : f.text.split(" AND ")
      const isCanonical = parts.every((p) => {
        const m = canonicalClause.exec(p)
        // the builder picks double quotes only for a value holding a single quote
        return m !== null && (m[3]!.startsWith("'") || m[3]!.includes("'"))
      })
      if (isCanonical) {
        expect(rendered, f.step).toBe(f.text.replace(/\battributes\./g, "attribute."))
        canonical++
      }
    }
    // ForML's own searches (forml-lifecycle) and the runs scenario's plain cases are among them
    expect(canonical).toBeGreaterThanOrEqual(12)
    expect(roundTripped).toBeGreaterThan(canonical)
  })
})

describe("Filter.matches", () => {
  const subject = (tags: Record<string, string>, attributes: Record<string, string> = {}): Filter.Subject => ({
    tag: (key) => tags[key],
    attribute: (key) => attributes[key]
  })

  it("compares with = and !=, and neither matches a missing tag", () => {
    const s = subject({ level: "release", empty: "" }, { run_name: "r1" })
    expect(Filter.matches(Filter.and(Filter.tag("level", "release")), s)).toBe(true)
    expect(Filter.matches(Filter.and(Filter.tag("level", "dev")), s)).toBe(false)
    expect(Filter.matches(Filter.and(Filter.tag("level", "dev", "!=")), s)).toBe(true)
    expect(Filter.matches(Filter.and(Filter.tag("level", "release", "!=")), s)).toBe(false)
    expect(Filter.matches(Filter.and(Filter.tag("missing", "x")), s)).toBe(false)
    expect(Filter.matches(Filter.and(Filter.tag("missing", "x", "!=")), s)).toBe(false)
    expect(Filter.matches(Filter.and(Filter.tag("empty", "")), s)).toBe(true)
    expect(Filter.matches(Filter.and(Filter.tag("missing", "")), s)).toBe(false)
    expect(Filter.matches(Filter.and(Filter.attribute("run_name", "r1")), s)).toBe(true)
    expect(Filter.matches(Filter.and(Filter.attribute("run_name", "R1")), s)).toBe(false)
  })

  it("joins clauses with AND; no clause matches everything", () => {
    const s = subject({ a: "1", b: "2" })
    expect(Filter.matches(Filter.none, s)).toBe(true)
    expect(Filter.matches(Filter.and(Filter.tag("a", "1"), Filter.tag("b", "2")), s)).toBe(true)
    expect(Filter.matches(Filter.and(Filter.tag("a", "1"), Filter.tag("b", "3")), s)).toBe(false)
  })

  it("selects the runs MLflow selected for each recorded filter it can express (on all three servers)", () => {
    // runs r1..r6 as created in the runs scenario; all RUNNING when the filters were sent
    const created = sqlite.filter((l) => l.scenario === "runs" && /^create-r\d/.test(l.step))
    const runs = created.map((l) => {
      const json = l.request.json ?? {}
      const tags = Object.fromEntries(
        ((json["tags"] ?? []) as ReadonlyArray<{ key: string; value: string }>).map((t) => [t.key, t.value])
      )
      const name = String(json["run_name"])
      return { name, subject: subject(tags, { run_name: name, user_id: String(json["user_id"]), status: "RUNNING" }) }
    })
    expect(runs.length).toBe(6)
    let checked = 0
    for (const recording of recordings) {
      for (const f of runFilters(recording).filter((x) => x.scenario === "runs" && x.status === 200)) {
        const filter = parseRecordedFilter(f.text)
        if (filter === undefined) continue
        const selected = runs.filter((r) => Filter.matches(filter, r.subject)).map((r) => r.name).sort()
        expect(selected, `${f.step}: ${f.text}`).toEqual([...f.names].sort())
        checked++
      }
    }
    expect(checked).toBeGreaterThanOrEqual(3 * 12)
  })
})
