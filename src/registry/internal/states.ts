/**
 * MlflowRegistry's states and tags: a write to the training in progress, the reads of a committed generation's
 * states (whole or streamed) and of its tag.
 *
 * @internal
 */
import { Effect, Stream } from "effect"
import type { ProjectKey } from "../../asset/ProjectKey.js"
import type { ReleaseKey } from "../../asset/ReleaseKey.js"
import type { StateId } from "../../asset/StateId.js"
import { Tag } from "../../asset/Tag.js"
import { Empty } from "../../errors.js"
import * as Layout from "../layout.js"
import type { Registry } from "../Registry.js"
import type { Artifacts } from "./artifacts.js"
import { plain } from "./digest.js"
import type { Generations } from "./generations.js"
import type { Instance } from "./instance.js"
import { generationName, releaseRef, stateNotFound } from "./runs.js"
import type { Training } from "./training.js"

/**
 * MLflow's log-batch takes at most 100 tags. The sha256 tags of states wait for the commit's batch; once this many
 * are waiting, a write sets them first, so the commit batch (pending tags, tag.toml's sha256, the run's name and
 * description, and the commit) stays one call.
 */
const PENDING_TAGS = 96

/** @internal */
export const make = (
  i: Instance,
  { unbound }: Training,
  { generationRun }: Generations,
  { download, readWhole, upload }: Artifacts
): Pick<Registry.Service, "write" | "read" | "readStream" | "open"> => {
  const write: Registry.Service["write"] = <E>(
    project: ProjectKey,
    release: ReleaseKey,
    sid: StateId,
    data: Uint8Array | Stream.Stream<Uint8Array, E>
  ) =>
    Effect.gen(function*() {
      yield* i.ready
      const training = yield* unbound.get(releaseRef(project, release))
      const written = yield* upload(training.run.info, Layout.ARTIFACT.state(sid), data)
      training.states.set(sid, written)
      training.pending.set(Layout.sha256Tag(Layout.ARTIFACT.state(sid)), written.sha256)
      if (training.pending.size >= PENDING_TAGS) {
        const batch = [...training.pending].map(([key, value]) => ({ key, value }))
        training.pending.clear()
        yield* i.mlflow.setTags(training.run.runId, batch).pipe(
          Effect.tapError(() =>
            Effect.sync(() => {
              for (const t of batch) if (!training.pending.has(t.key)) training.pending.set(t.key, t.value)
            })
          )
        )
      }
    }).pipe(Effect.withSpan("MlflowRegistry.write"))

  const readStream: Registry.Service["readStream"] = (project, release, generation, sid) =>
    Stream.unwrap(
      Effect.gen(function*() {
        yield* i.ready
        const run = yield* generationRun(project, release, generation)
        const where = generationName(project, release, generation)
        return download(run, Layout.ARTIFACT.state(sid)).pipe(
          Stream.catchTag("NotFound", () => Stream.fail(stateNotFound(where, sid)))
        )
      })
    ).pipe(Stream.withSpan("MlflowRegistry.readStream"))

  // read whole (one request, no stream), as it ends in memory anyway
  const read: Registry.Service["read"] = Effect.fn("MlflowRegistry.read")(
    function*(project, release, generation, sid) {
      yield* i.ready
      const run = yield* generationRun(project, release, generation)
      const where = generationName(project, release, generation)
      const bytes = yield* readWhole(run, Layout.ARTIFACT.state(sid)).pipe(
        Effect.catchTag("NotFound", () => Effect.fail(stateNotFound(where, sid)))
      )
      return plain(bytes)
    }
  )

  const open: Registry.Service["open"] = Effect.fn("MlflowRegistry.open")(function*(project, release, generation) {
    yield* i.ready
    const run = yield* generationRun(project, release, generation)
    const bytes = yield* readWhole(run, Layout.ARTIFACT.tag).pipe(
      Effect.catchTag(
        "NotFound",
        () => Effect.fail(new Empty({ entity: "tag", key: generationName(project, release, generation) }))
      )
    )
    return yield* Tag.decode(bytes)
  })

  return { write, read, readStream, open }
}
