/**
 * The project level key: a project name as ForML uses it (`helloworld`, `forml-titanic`), validated on construction.
 * `@` is never part of it, because `<project>@<repoid>` names the MLflow experiment of a virtual repository.
 */
import type { Brand } from "effect"
import { Either, Schema } from "effect"
import { InvalidInput } from "../errors.js"

export type ProjectKey = string & Brand.Brand<"ProjectKey">

const MAX_LENGTH = 255
const PATTERN = /^[A-Za-z0-9._-]+$/

/** Why `s` is not a project name, or undefined when it is one. */
const problem = (s: string): string | undefined => {
  if (s.length === 0) return "empty"
  if (s.length > MAX_LENGTH) return `longer than ${MAX_LENGTH} characters`
  if (s.includes("@")) return "'@' is reserved for the repository id"
  if (s === "." || s === "..") return "not a name"
  if (!PATTERN.test(s)) return "only letters, digits, '_', '-' and '.' are allowed"
  return undefined
}

const schema: Schema.Schema<ProjectKey, string> = Schema.String.pipe(
  Schema.filter((s) => problem(s) ?? true, { identifier: "ProjectKey" }),
  Schema.brand("ProjectKey")
)

export const ProjectKey = {
  /** A project name, or `InvalidInput` (kind "ProjectKey") saying what is wrong with it. */
  parse(s: string): Either.Either<ProjectKey, InvalidInput> {
    const reason = problem(s)
    return reason === undefined
      ? Either.right(s as ProjectKey)
      : Either.left(new InvalidInput({ kind: "ProjectKey", input: s, reason }))
  },
  /** Whether `s` is a valid project name. */
  is(s: string): s is ProjectKey {
    return problem(s) === undefined
  },
  schema
} as const
