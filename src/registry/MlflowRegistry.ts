/**
 * MlflowRegistry: the Registry service on an MLflow tracking server (any Mlflow layer), in ForML's wire layout
 * (see layout.ts), with cached get-or-create, converging races, sha256 integrity tags and typed errors.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { PlatformError } from "@effect/platform/Error"
import {
  Array as Arr,
  Cache,
  Chunk,
  Clock,
  Data,
  Duration,
  Effect,
  Either,
  Equal,
  FiberRef,
  Layer,
  MutableHashMap,
  Option,
  Scope,
  Sink,
  Stream,
  Tracer
} from "effect"
import { globalValue } from "effect/GlobalValue"
import { createHash } from "node:crypto"
import { v4 } from "uuid"
import { GenerationKey } from "../asset/GenerationKey.js"
import { Package } from "../asset/Package.js"
import { ProjectKey } from "../asset/ProjectKey.js"
import { ReleaseKey } from "../asset/ReleaseKey.js"
import type { StateId } from "../asset/StateId.js"
import { Tag } from "../asset/Tag.js"
import { Empty, IntegrityError, InvalidInput, MlflowApiError, NotFound, StorageError } from "../errors.js"
import type { MlflowFailure } from "../errors.js"
import * as Filter from "../mlflow/Filter.js"
import { EntityTag, Mlflow, Run, RunInfo } from "../mlflow/Mlflow.js"
import type { ArtifactRoot, MetricPoint, ViewType } from "../mlflow/Mlflow.js"
import * as Layout from "./layout.js"
import { Registry } from "./Registry.js"

export interface MlflowRegistryOptions {
  /** The virtual repository: experiments are named `<project>@<repoid>`; "" (the default) is the plain namespace. */
  readonly repoid?: string | undefined
  /**
   * Where pulled packages and mounted releases go (a directory shared by runner nodes, as in ForML). Default: a
   * temporary directory removed when the layer is released. A given directory is created if missing, never removed.
   */
  readonly staging?: string | undefined
  /**
   * The `forml.session` tag of this instance's training runs. Default: a fresh uuid4, so no other instance shares
   * it. Passing the session of an earlier instance resumes its unfinished training (its states can be closed).
   */
  readonly session?: string | undefined
  /** How many searches one listing may run at once. Default 4. */
  readonly concurrency?: number | undefined
  /**
   * How long a close waits for another writer's commit of the same generation number to finish before taking it
   * as abandoned (a crashed writer). Default 10 seconds.
   */
  readonly commitWait?: Duration.DurationInput | undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------

// Cache keys: Data tuples compare by value, and ReleaseKey's Equal makes `1.0` and `1.0.0` one key.
type ReleaseRef = readonly [ProjectKey, ReleaseKey]
type GenerationRef = readonly [ProjectKey, ReleaseKey, GenerationKey]

const releaseRef = (project: ProjectKey, release: ReleaseKey): ReleaseRef => Data.tuple(project, release)
const generationRef = (project: ProjectKey, release: ReleaseKey, generation: GenerationKey): GenerationRef =>
  Data.tuple(project, release, generation)

interface ExperimentRef {
  readonly id: string
  readonly name: string
}

/** The runs of one release: every active duplicate a race left, canonical first. */
interface ReleaseRuns {
  readonly experiment: ExperimentRef
  readonly canonical: Run
  readonly all: ReadonlyArray<Run>
}

/** What MLflow's UI shows of a committed generation: its name and description tags, and its metrics. */
interface Display {
  readonly tags: ReadonlyArray<Layout.TagPair>
  readonly metrics: ReadonlyArray<MetricPoint>
}

/** What an upload sent: the sha256 (hex) and the length of its bytes. */
interface Written {
  readonly sha256: string
  readonly size: number
}

/** The training in progress of this instance under one release: its run and what each state written sent. */
interface Unbound {
  readonly run: Run
  /** Every state written to the run by this instance. */
  readonly states: Map<string, Written>
  /** `forml.sha256.<sid>.bin` tags not yet set (they go with the commit, or in a batch once PENDING_TAGS are due). */
  readonly pending: Map<string, string>
}

/**
 * MLflow's log-batch takes at most 100 tags. The sha256 tags of states wait for the commit's batch; once this many
 * are waiting, a write sets them first, so the commit batch (pending tags, tag.toml's sha256, the run's name and
 * description, and the commit) stays one call.
 */
const PENDING_TAGS = 96

/** A per-instance memo over effect's Cache: concurrent callers share one lookup; a failure is not kept. */
interface Memo<K, A, E> {
  readonly get: (key: K) => Effect.Effect<A, E>
  /** The value and whether this call computed it (false: it was cached or computed by a concurrent caller). */
  readonly getFresh: (key: K) => Effect.Effect<readonly [A, boolean], E>
  readonly peek: (key: K) => Effect.Effect<Option.Option<A>>
  readonly set: (key: K, value: A) => Effect.Effect<void>
  readonly invalidate: (key: K) => Effect.Effect<void>
}

/**
 * The span of the caller that starts a memo's lookup. effect's Cache runs a lookup in the context it was made in
 * (the layer's), which would make the lookup's calls (a create, a search) the roots of traces of their own; the
 * lookup runs on the caller's fiber, so a FiberRef carries the caller's span to it.
 */
const lookupParent = globalValue(
  Symbol.for("forml-mlflow/registry/lookupParent"),
  () => FiberRef.unsafeMake<Option.Option<Tracer.AnySpan>>(Option.none())
)

const memo = <K, A, E>(lookup: (key: K) => Effect.Effect<A, E>): Effect.Effect<Memo<K, A, E>> =>
  Effect.map(
    Cache.make<K, A, E>({
      capacity: Number.MAX_SAFE_INTEGER,
      timeToLive: Duration.infinity,
      lookup: (key) =>
        Effect.flatMap(FiberRef.get(lookupParent), (parent) =>
          Option.match(parent, {
            onNone: () => lookup(key),
            onSome: (span) => Effect.withParentSpan(lookup(key), span)
          }))
    }),
    (cache) => {
      // effect's Cache keeps failures like values; dropping the entry makes the next caller look again.
      const forget = (key: K) => <X>(self: Effect.Effect<X, E>) =>
        Effect.tapError(
          Effect.flatMap(Effect.serviceOption(Tracer.ParentSpan), (parent) =>
            Effect.locally(self, lookupParent, parent)),
          () => cache.invalidate(key)
        )
      return {
        get: (key) => forget(key)(cache.get(key)),
        getFresh: (key) =>
          forget(key)(Effect.map(cache.getEither(key), (e) => [Either.merge(e), Either.isRight(e)] as const)),
        peek: (key) => cache.getOptionComplete(key),
        set: (key, value) => cache.set(key, value),
        invalidate: (key) => cache.invalidate(key)
      }
    }
  )

const training = (run: Run): Unbound => ({ run, states: new Map(), pending: new Map() })

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const utf8 = new TextEncoder()

/** The same bytes as a plain Uint8Array (a layer may hand out Node Buffers), without copying. */
const plain = (b: Uint8Array): Uint8Array =>
  b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)

/** The bytes of `stream`, then what `atEnd` makes of their sha256 (hex), computed afresh each time it runs. */
const digested = <E, E2>(
  stream: Stream.Stream<Uint8Array, E>,
  atEnd: (hex: string) => Stream.Stream<never, E2>
): Stream.Stream<Uint8Array, E | E2> =>
  Stream.suspend(() => {
    const hash = createHash("sha256")
    return stream.pipe(
      Stream.map((chunk) => {
        hash.update(chunk)
        return chunk
      }),
      Stream.concat(Stream.suspend(() => atEnd(hash.digest("hex"))))
    )
  })

/** The IntegrityError of bytes whose sha256 (`actual`) differs from their tag's, if it does. */
const mismatch = (artifact: string, expected: string, actual: string): Option.Option<IntegrityError> =>
  actual === expected.toLowerCase() ? Option.none() : Option.some(new IntegrityError({ artifact, expected, actual }))

/** The bytes of `stream`, failing at the end with IntegrityError when their sha256 differs from `expected`. */
const verified = <E>(
  stream: Stream.Stream<Uint8Array, E>,
  artifact: string,
  expected: Option.Option<string>
): Stream.Stream<Uint8Array, E | IntegrityError> =>
  Option.isNone(expected) ? stream : digested(stream, (actual) =>
    Option.match(mismatch(artifact, expected.value, actual), { onNone: () => Stream.empty, onSome: Stream.fail }))

/** A NotFound met where the registry created or just saw the entity: the store changed under us. */
const vanished = (e: NotFound): MlflowApiError =>
  new MlflowApiError({ status: 404, errorCode: "RESOURCE_DOES_NOT_EXIST", detail: e.message })

const orVanished = <A, E, R>(
  self: Effect.Effect<A, E | NotFound, R>
): Effect.Effect<A, Exclude<E, NotFound> | MlflowApiError, R> =>
  Effect.catchIf(self, (e): e is NotFound => e instanceof NotFound, (e) => Effect.fail(vanished(e)))

const storage = (path: string) => (e: PlatformError): StorageError => new StorageError({ path, reason: e.message })

const withRunUpdate = (run: Run, info: RunInfo, tags: ReadonlyArray<Layout.TagPair>): Run =>
  new Run({ info, tags: [...run.tags, ...tags.map((t) => new EntityTag(t))] })

// Commit instants are end times that strictly increase within a process, so that two commits in the same
// millisecond (tests, or trainers sharing a process) still have an order; across processes the clock orders them.
const lastInstant = globalValue(Symbol.for("forml-mlflow/registry/lastCommitInstant"), () => ({ value: 0 }))
const commitInstant = Effect.map(Clock.currentTimeMillis, (now) => {
  lastInstant.value = Math.max(now, lastInstant.value + 1)
  return lastInstant.value
})

const isActive = (run: Run): boolean => run.info.lifecycleStage === "active"

const releaseKeyOf = (run: Run): Option.Option<ReleaseKey> =>
  Option.flatMap(run.tag(Layout.TAG.commit), (v) => Either.getRight(ReleaseKey.parse(v)))

const generationKeyOf = (run: Run): Option.Option<GenerationKey> =>
  Option.flatMap(run.tag(Layout.TAG.commit), (v) => Either.getRight(GenerationKey.parse(v)))

/** The release runs for `release` (by PEP 440 equality, so `1.0` finds `1.0.0`), canonical first. */
const runsOf = (runs: ReadonlyArray<Run>, release: ReleaseKey): ReadonlyArray<Run> =>
  Arr.sort(runs.filter((r) => Option.exists(releaseKeyOf(r), (k) => Equal.equals(k, release))), Layout.byStart)

const releaseName = (project: ProjectKey, release: ReleaseKey): string => `${project}-${release}`

// ---------------------------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------------------------

/** A Registry over the Mlflow service in scope; resources (the default staging directory) live in the Scope. */
export const make = (
  options: MlflowRegistryOptions = {}
): Effect.Effect<Registry.Service, never, Mlflow | FileSystem.FileSystem | Path.Path | Scope.Scope> =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const layerScope = yield* Effect.scope
    const repoid = options.repoid ?? ""
    const sessionGiven = options.session !== undefined
    const session = options.session ?? v4()
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4))
    const commitWait = Duration.toMillis(Duration.decode(options.commitWait ?? "10 seconds"))

    // The repoid and the session are the only free text in this instance's filters: a value MLflow cannot quote is
    // reported by every operation before anything is sent.
    const ready: Effect.Effect<void, InvalidInput> = Either.match(
      Either.all([
        Filter.validate(Layout.releaseRuns(repoid)),
        Filter.validate(Layout.sessionRuns(repoid, "run", session))
      ]),
      { onLeft: (e) => Effect.fail(e), onRight: () => Effect.void }
    )

    const searchAll = (
      experimentIds: ReadonlyArray<string>,
      filter: Filter.Filter,
      viewType: ViewType = "ACTIVE_ONLY"
    ): Effect.Effect<ReadonlyArray<Run>, InvalidInput | MlflowFailure> =>
      Effect.map(Stream.runCollect(mlflow.searchRuns({ experimentIds, filter, viewType })), Chunk.toReadonlyArray)

    const now = Clock.currentTimeMillis

    // -- experiments (projects) -------------------------------------------------------------------------------------

    const projectNotFound = (project: ProjectKey) =>
      new NotFound({ entity: "project", key: Layout.experimentName(project, repoid) })

    const experiments = yield* memo((project: ProjectKey) =>
      mlflow.getExperimentByName(Layout.experimentName(project, repoid)).pipe(
        Effect.catchTag("NotFound", () => Effect.fail(projectNotFound(project))),
        Effect.flatMap((e) =>
          e.lifecycleStage === "active"
            ? Effect.succeed<ExperimentRef>({ id: e.experimentId, name: e.name })
            : Effect.fail(projectNotFound(project))
        )
      )
    )

    /** Get-or-create of a project's experiment (restoring a deleted one); true when this call created it. */
    const createdExperiments = yield* memo((project: ProjectKey) =>
      Effect.gen(function*() {
        const name = Layout.experimentName(project, repoid)
        const adopt = (e: { readonly experimentId: string; readonly lifecycleStage: string }) =>
          Effect.gen(function*() {
            if (e.lifecycleStage !== "active") {
              yield* orVanished(mlflow.restoreExperiment(e.experimentId))
            }
            const ref: ExperimentRef = { id: e.experimentId, name }
            yield* experiments.set(project, ref)
            return [ref, false] as const
          })
        const existing = yield* mlflow.getExperimentByName(name).pipe(
          Effect.map(Option.some),
          Effect.catchTag("NotFound", () => Effect.succeedNone)
        )
        if (Option.isSome(existing)) return yield* adopt(existing.value)
        const created = yield* mlflow.createExperiment(name).pipe(
          Effect.map(Option.some),
          Effect.catchTag("AlreadyExists", () => Effect.succeedNone)
        )
        if (Option.isNone(created)) {
          // another writer created it between our look-up and our create
          return yield* adopt(yield* orVanished(mlflow.getExperimentByName(name)))
        }
        const ref: ExperimentRef = { id: created.value, name }
        yield* experiments.set(project, ref)
        return [ref, true] as const
      })
    )

    // -- releases ---------------------------------------------------------------------------------------------------

    const releaseNotFound = (project: ProjectKey, release: ReleaseKey) =>
      new NotFound({ entity: "release", key: releaseName(project, release) })

    const releases = yield* memo((ref: ReleaseRef) =>
      Effect.gen(function*() {
        const [project, release] = ref
        const experiment = yield* experiments.get(project)
        const found = runsOf(
          (yield* dropAbandoned(yield* searchAll([experiment.id], Layout.releaseRuns(repoid)))).filter(
            Layout.isPublished
          ),
          release
        )
        if (!Arr.isNonEmptyReadonlyArray(found)) return yield* releaseNotFound(project, release)
        const value: ReleaseRuns = { experiment, canonical: found[0], all: found }
        return value
      })
    )

    /**
     * Get-or-create of a release run. After creating, the runs are searched again: when a racing writer's run is
     * canonical, ours (still empty) is deleted and theirs used, so every writer ends on the same run.
     */
    const createdReleases = yield* memo((ref: ReleaseRef) =>
      Effect.gen(function*() {
        const [project, release] = ref
        const [[experiment, created], computed] = yield* createdExperiments.getFresh(project)
        let restored = false
        // an experiment this very call created holds no run yet: skip the search (the check after creating runs)
        if (!(created && computed)) {
          const runs = runsOf(yield* searchAll([experiment.id], Layout.releaseRuns(repoid), "ALL"), release)
          const active = yield* dropAbandoned(runs.filter(isActive))
          if (Arr.isNonEmptyReadonlyArray(active)) {
            const value: ReleaseRuns = { experiment, canonical: active[0], all: active }
            return value
          }
          if (Arr.isNonEmptyReadonlyArray(runs)) {
            yield* orVanished(mlflow.restoreRun(runs[0].runId))
            restored = true
          }
        }
        if (restored) {
          const value = yield* converge(experiment, release, Option.none(), Option.none())
          if (Option.isNone(value.runs)) return yield* Effect.fail(vanished(releaseNotFound(project, release)))
          return value.runs.value
        }
        // one token for this create: every HTTP attempt of it sends the same body
        const token = v4()
        const creation = yield* Effect.either(orVanished(mlflow.createRun({
          experimentId: experiment.id,
          runName: Layout.releaseRunName(project, release.toString()),
          userId: Layout.USER_ID,
          startTime: yield* now,
          tags: [...Layout.newReleaseTags(repoid, release.toString()), Layout.createTag(token)],
          idempotencyTag: Layout.TAG.create
        })))
        if (Either.isLeft(creation)) {
          // the run may exist though the create failed (its reply lost, then the retry failed): it is ours
          const value = yield* Effect.option(converge(experiment, release, Option.none(), Option.some(token)))
          if (Option.isSome(value) && value.value.ours && Option.isSome(value.value.runs)) return value.value.runs.value
          return yield* Effect.fail(creation.left)
        }
        const value = yield* converge(experiment, release, Option.some(creation.right), Option.some(token))
        if (Option.isNone(value.runs)) return yield* Effect.fail(vanished(releaseNotFound(project, release)))
        return value.runs.value
      })
    )

    /**
     * The active runs of a release after a create or restore. Every run carrying this create's token is ours (a lost
     * reply and its retry may have made several); those that are not canonical are deleted (they are still empty).
     * `ours`: whether a run of this create was found.
     */
    const converge = (
      experiment: ExperimentRef,
      release: ReleaseKey,
      own: Option.Option<Run>,
      token: Option.Option<string>
    ) =>
      Effect.gen(function*() {
        let after = yield* dropAbandoned(runsOf(yield* searchAll([experiment.id], Layout.releaseRuns(repoid)), release))
        const mine = (r: Run) =>
          Option.exists(own, (o) => o.runId === r.runId) ||
          Option.exists(token, (t) => Option.contains(Layout.createTokenOf(r), t))
        const ours = after.some(mine)
        if (Arr.isNonEmptyReadonlyArray(after)) {
          const canonical = after[0]
          const duplicates = new Set(after.filter((r) => r.runId !== canonical.runId && mine(r)).map((r) => r.runId))
          // our run may not show in the search yet
          if (Option.isSome(own) && own.value.runId !== canonical.runId) duplicates.add(own.value.runId)
          yield* Effect.forEach(duplicates, (runId) => Effect.ignore(mlflow.deleteRun(runId)), {
            concurrency,
            discard: true
          })
          after = after.filter((r) => !duplicates.has(r.runId))
        }
        const runs = Arr.isNonEmptyReadonlyArray(after)
          ? Option.some<ReleaseRuns>({ experiment, canonical: after[0], all: after })
          : Option.map(own, (run): ReleaseRuns => ({ experiment, canonical: run, all: [run] }))
        return { runs, ours: ours || Option.isSome(own) }
      })

    /**
     * Release runs searched anew, without those a lost create reply abandoned (see Layout.abandoned), which are
     * deleted on the way: a late reply may have made them after their writer's own check.
     */
    const dropAbandoned = (runs: ReadonlyArray<Run>) =>
      Effect.gen(function*() {
        const gone = Layout.abandoned(runs)
        if (gone.length === 0) return runs
        yield* Effect.forEach(gone, (r) => Effect.ignore(mlflow.deleteRun(r.runId)), { concurrency, discard: true })
        const ids = new Set(gone.map((r) => r.runId))
        return runs.filter((r) => !ids.has(r.runId))
      })

    // -- generations --------------------------------------------------------------------------------------------

    const generationNotFound = (project: ProjectKey, release: ReleaseKey, generation: GenerationKey) =>
      new NotFound({ entity: "generation", key: `${releaseName(project, release)}#${generation}` })

    /** The runs committed as `generation` under every run of the release (a race may have left two release runs). */
    const committedAt = (rel: ReleaseRuns, generation: GenerationKey) =>
      Effect.map(
        Effect.forEach(
          rel.all,
          (parent) => searchAll([rel.experiment.id], Layout.committedRuns(repoid, parent.runId, generation)),
          { concurrency }
        ),
        (found) => Arr.sort(found.flat(), Layout.byCommit)
      )

    /** Every committed generation run of the release, by number. */
    const committedRuns = (rel: ReleaseRuns) =>
      Effect.map(
        Effect.forEach(
          rel.all,
          (parent) => searchAll([rel.experiment.id], Layout.generationRuns(repoid, parent.runId)),
          { concurrency }
        ),
        (found) => {
          const byNumber = new Map<GenerationKey, Array<Run>>()
          for (const run of found.flat()) {
            const key = generationKeyOf(run)
            if (Option.isNone(key)) continue // unbound (training in progress) or not ForML's
            const list = byNumber.get(key.value)
            if (list === undefined) byNumber.set(key.value, [run])
            else list.push(run)
          }
          return byNumber
        }
      )

    const generationsMemo = yield* memo((ref: GenerationRef) =>
      Effect.gen(function*() {
        const [project, release, generation] = ref
        const rel = yield* releases.get(releaseRef(project, release))
        const holders = yield* committedAt(rel, generation)
        if (!Arr.isNonEmptyReadonlyArray(holders)) return yield* generationNotFound(project, release, generation)
        return holders[0]
      })
    )

    /** The run that holds a committed generation; kept for good only once its number is settled. */
    const generationRun = (project: ProjectKey, release: ReleaseKey, generation: GenerationKey) => {
      const ref = generationRef(project, release, generation)
      return Effect.tap(
        generationsMemo.get(ref),
        (run) => (Layout.isSettled(run) ? Effect.void : generationsMemo.invalidate(ref))
      )
    }

    // -- training (unbound generation runs) -------------------------------------------------------------------------

    /** The uncommitted runs of this session under the release, canonical first. */
    const sessionRuns = (rel: ReleaseRuns) =>
      Effect.map(
        searchAll([rel.experiment.id], Layout.sessionRuns(repoid, rel.canonical.runId, session)),
        (runs) => Arr.sort(runs.filter((r) => !Layout.isCommitted(r)), Layout.byStart)
      )

    const unbound = yield* memo((ref: ReleaseRef) =>
      Effect.gen(function*() {
        const [project, release] = ref
        const rel = yield* releases.get(ref)
        if (sessionGiven) {
          // a given session may be shared (resumed training, or several instances): join its run
          const existing = yield* sessionRuns(rel)
          if (Arr.isNonEmptyReadonlyArray(existing)) return training(existing[0])
        }
        // one token for this create: the Mlflow layer looks for it before retrying a create whose reply was lost
        const token = v4()
        const created = yield* Effect.either(mlflow.createRun({
          experimentId: rel.experiment.id,
          runName: Layout.trainingRunName(project, release.toString()),
          userId: Layout.USER_ID,
          startTime: yield* now,
          tags: [...Layout.generationTags(repoid, rel.canonical.runId, session), Layout.createTag(token)],
          idempotencyTag: Layout.TAG.create
        }))
        const mine = (r: Run) => Option.contains(Layout.createTokenOf(r), token)
        const deleteAll = (runs: ReadonlyArray<Run>) =>
          Effect.forEach(runs, (r) => Effect.ignore(mlflow.deleteRun(r.runId)), { concurrency, discard: true })
        if (Either.isLeft(created)) {
          // the run may exist though the create failed (its reply lost, then the retry failed): it is ours
          const made = Arr.sort(
            yield* Effect.orElseSucceed(
              searchAll([rel.experiment.id], Layout.createdRuns(repoid, rel.canonical.runId, session, token)),
              (): ReadonlyArray<Run> => []
            ),
            Layout.byStart
          )
          if (!Arr.isNonEmptyReadonlyArray(made)) return yield* Effect.fail(created.left)
          yield* deleteAll(made.slice(1))
          return training(made[0])
        }
        const run = created.right
        if (sessionGiven) {
          const after = yield* sessionRuns(rel)
          if (Arr.isNonEmptyReadonlyArray(after)) {
            // every run of this create other than the one kept is an empty duplicate
            const kept = after[0]
            yield* deleteAll(
              [run, ...after.filter((r) => mine(r) && r.runId !== run.runId)].filter((r) => r.runId !== kept.runId)
            )
            return training(kept)
          }
        }
        return training(run)
      })
    )

    // -- staging ----------------------------------------------------------------------------------------------------

    const stagingRoot = yield* memo((_: "root") =>
      options.staging !== undefined
        ? Effect.as(
          Effect.mapError(fs.makeDirectory(options.staging, { recursive: true }), storage(options.staging)),
          path.resolve(options.staging)
        )
        : fs.makeTempDirectoryScoped({ prefix: "forml-mlflow-" }).pipe(
          Effect.mapError(storage("temporary staging directory")),
          Scope.extend(layerScope)
        )
    )

    /** A fresh path (not yet created) under the staging directory. */
    const stagingPath = Effect.map(stagingRoot.get("root"), (root) => path.join(root, v4()))

    const makeDirectory = (dir: string) => Effect.mapError(fs.makeDirectory(dir, { recursive: true }), storage(dir))

    // -- artifacts --------------------------------------------------------------------------------------------------

    /**
     * Uploads bytes or a stream and returns their sha256 and length. A stream is spooled to the staging directory
     * first (hashed and counted on the way, the file removed afterwards), so that every upload carries its length
     * (a chunked body is stored empty by MLflow 3.x) and a failed PUT can be sent again.
     */
    const upload = <E>(
      root: ArtifactRoot,
      name: string,
      data: Uint8Array | Stream.Stream<Uint8Array, E>
    ): Effect.Effect<Written, E | InvalidInput | MlflowFailure> => {
      if (data instanceof Uint8Array) {
        return Effect.as(mlflow.uploadArtifact(root, name, data), { sha256: sha256(data), size: data.length })
      }
      return Effect.scoped(Effect.gen(function*() {
        const file = yield* stagingPath
        yield* Effect.addFinalizer(() => Effect.ignore(fs.remove(file)))
        const hash = createHash("sha256")
        let size = 0
        yield* data.pipe(
          Stream.filter((chunk) => chunk.length > 0), // the file sink refuses an empty write
          Stream.map((chunk) => {
            hash.update(chunk)
            size += chunk.length
            return chunk
          }),
          Stream.run(Sink.mapError(fs.sink(file), storage(file)))
        )
        yield* mlflow.uploadArtifact(root, name, { file })
        return { sha256: hash.digest("hex"), size }
      }))
    }

    /**
     * Checks one listing of a run's artifacts against what was written: each artifact must be stored with the size
     * sent (a server can answer 200 and keep less); one never written is NotFound (`missing`).
     */
    const checkStored = <E>(
      root: ArtifactRoot,
      expected: ReadonlyArray<{ readonly name: string; readonly size: number | undefined }>,
      missing: (index: number) => E
    ) =>
      Effect.gen(function*() {
        const stored = new Map(
          (yield* mlflow.listArtifacts(root)).filter((f) => !f.isDir).map((f) => [f.path, f.fileSize ?? 0] as const)
        )
        for (const [index, { name, size }] of expected.entries()) {
          const actual = stored.get(name)
          if (actual === undefined) return yield* Effect.fail(missing(index))
          if (size !== undefined && actual !== size) {
            return yield* new IntegrityError({
              artifact: name,
              expected: String(size),
              actual: String(actual),
              measure: "size"
            })
          }
        }
      })

    /** An artifact of a run, verified against its `forml.sha256.<name>` tag when the run has one. */
    const download = (run: Run, name: string) =>
      verified(mlflow.downloadArtifact(run.info, name), name, run.tag(Layout.sha256Tag(name)))

    /** The same, read whole. */
    const readWhole = (run: Run, name: string) =>
      Effect.flatMap(mlflow.readArtifact(run.info, name), (bytes) =>
        Option.match(Option.flatMap(run.tag(Layout.sha256Tag(name)), (tag) => mismatch(name, tag, sha256(bytes))), {
          onNone: () => Effect.succeed(bytes),
          onSome: Effect.fail
        }))

    // -- the operations ---------------------------------------------------------------------------------------------

    const projects: Registry.Service["projects"] = Stream.unwrap(
      Effect.gen(function*() {
        yield* ready
        const all = yield* Stream.runCollect(mlflow.searchExperiments({ viewType: "ACTIVE_ONLY" }))
        const candidates = Arr.filterMap(Chunk.toReadonlyArray(all), (e) =>
          Option.map(Layout.projectOf(e.name, repoid), (project) => ({ project, experiment: e })))
        // a project is an experiment of this repository holding a release run: Default, `my-exp` and any other
        // experiment that merely looks like a project name are skipped
        const holders = new Set<string>()
        yield* Effect.forEach(
          Arr.chunksOf(candidates, 100),
          (chunk) =>
            Effect.map(
              Effect.flatMap(searchAll(chunk.map((c) => c.experiment.experimentId), Layout.releaseRuns(repoid)), dropAbandoned),
              (runs) => {
                for (const run of runs) {
                  if (Layout.isPublished(run) && Option.isSome(releaseKeyOf(run))) holders.add(run.info.experimentId)
                }
              }
            ),
          { concurrency, discard: true }
        )
        const found = candidates.filter((c) => holders.has(c.experiment.experimentId))
        yield* Effect.forEach(
          found,
          (c) => experiments.set(c.project, { id: c.experiment.experimentId, name: c.experiment.name }),
          { discard: true }
        )
        return Stream.fromIterable(found.map((c) => c.project))
      })
    ).pipe(Stream.withSpan("MlflowRegistry.projects"))

    const listReleases: Registry.Service["releases"] = (project) =>
      Stream.unwrap(
        Effect.gen(function*() {
          yield* ready
          const experiment = yield* experiments.get(project)
          const runs = (yield* dropAbandoned(yield* searchAll([experiment.id], Layout.releaseRuns(repoid)))).filter(
            Layout.isPublished
          )
          // one key per PEP 440 version, as its canonical run spells it (`1.0` and `1.0.0` are one release); each
          // version is parsed once and grouped by ReleaseKey's Hash, so a listing stays linear in its runs
          const keys: Array<ReleaseKey> = []
          const groups = MutableHashMap.empty<ReleaseKey, Array<Run>>()
          for (const run of Arr.sort(runs, Layout.byStart)) {
            const key = releaseKeyOf(run)
            if (Option.isNone(key)) continue
            const group = MutableHashMap.get(groups, key.value)
            if (Option.isSome(group)) group.value.push(run)
            else {
              keys.push(key.value)
              MutableHashMap.set(groups, key.value, [run])
            }
          }
          for (const key of keys) {
            const all = Option.getOrElse(MutableHashMap.get(groups, key), (): Array<Run> => [])
            yield* releases.set(releaseRef(project, key), { experiment, canonical: all[0]!, all })
          }
          return Stream.fromIterable(Arr.sort(keys, ReleaseKey.Order))
        })
      ).pipe(Stream.withSpan("MlflowRegistry.releases"))

    const listGenerations: Registry.Service["generations"] = (project, release) =>
      Stream.unwrap(
        Effect.gen(function*() {
          yield* ready
          const rel = yield* releases.get(releaseRef(project, release))
          const byNumber = yield* committedRuns(rel)
          for (const [generation, runs] of byNumber) {
            const winner = Arr.sort(runs, Layout.byCommit)[0]!
            if (Layout.isSettled(winner)) {
              yield* generationsMemo.set(generationRef(project, release, generation), winner)
            }
          }
          return Stream.fromIterable(Arr.sort([...byNumber.keys()], GenerationKey.Order))
        })
      ).pipe(Stream.withSpan("MlflowRegistry.generations"))

    const push: Registry.Service["push"] = Effect.fn("MlflowRegistry.push")(function*(pkg) {
      yield* ready
      const project = yield* ProjectKey.parse(pkg.manifest.name)
      const release = pkg.manifest.version
      yield* Effect.scoped(Effect.gen(function*() {
        // a directory package is zipped into a scratch directory that goes away with the push
        const scratch = yield* stagingPath
        yield* Effect.acquireRelease(makeDirectory(scratch), () =>
          Effect.ignore(fs.remove(scratch, { recursive: true })))
        const zip = yield* Effect.provideService(Package.toZip(pkg, scratch), FileSystem.FileSystem, fs)
        // the sha256 in one streamed pass over the local zip; the upload then reads the file itself, so that the
        // Mlflow layer can send it again when a PUT fails half-way
        let size = 0
        const digest = yield* fs.stream(zip).pipe(
          Stream.runFold(createHash("sha256"), (hash, chunk) => {
            size += chunk.length
            return hash.update(chunk)
          }),
          Effect.map((hash) => hash.digest("hex")),
          Effect.mapError(storage(zip))
        )
        const ref = releaseRef(project, release)
        const rel = yield* createdReleases.get(ref)
        const run = rel.canonical
        yield* mlflow.uploadArtifact(run.info, Layout.ARTIFACT.package, { file: zip })
        // nothing lists that is not stored whole
        yield* checkStored(
          run.info,
          [{ name: Layout.ARTIFACT.package, size }],
          () => new IntegrityError({ artifact: Layout.ARTIFACT.package, expected: String(size), actual: "0", measure: "size" })
        )
        // published: the sha256 replaces the empty tag the run was created with, and the release lists from now on;
        // beside it (one round trip) the run is marked FINISHED, as MLflow's UI shows a run that is done
        const endTime = yield* now
        yield* orVanished(Effect.all([
          mlflow.setTags(run.runId, [
            { key: Layout.TAG.note, value: Layout.releaseNote(project, release.toString()) },
            { key: Layout.sha256Tag(Layout.ARTIFACT.package), value: digest }
          ]),
          mlflow.updateRun(run.runId, { status: "FINISHED", endTime })
        ], { concurrency: 2, discard: true }))
        yield* releases.set(ref, rel)
      }))
    })

    const pull: Registry.Service["pull"] = Effect.fn("MlflowRegistry.pull")(function*(project, release) {
      yield* ready
      const rel = yield* releases.get(releaseRef(project, release))
      // the run is read afresh: a push of the same version since may have replaced the package and its sha256 tag
      const run = yield* Effect.catchTag(
        mlflow.getRun(rel.canonical.runId),
        "NotFound",
        () => Effect.fail(releaseNotFound(project, release))
      )
      const dir = yield* stagingPath
      yield* makeDirectory(dir)
      const target = path.join(dir, Layout.ARTIFACT.package)
      yield* download(run, Layout.ARTIFACT.package).pipe(
        Stream.catchTag("NotFound", () =>
          Stream.fail(new NotFound({ entity: "package", key: releaseName(project, release) }))),
        Stream.run(fs.sink(target)),
        Effect.catchTags({ SystemError: storage(target), BadArgument: storage(target) }),
        Effect.tapError(() => Effect.ignore(fs.remove(dir, { recursive: true })))
      )
      return yield* Effect.provideService(Package.open(target), FileSystem.FileSystem, fs)
    })

    const mount: Registry.Service["mount"] = Effect.fn("MlflowRegistry.mount")(function*(project, release) {
      const pkg = yield* pull(project, release)
      const dir = yield* stagingPath
      yield* Effect.provideService(Package.unpack(pkg.path, dir), FileSystem.FileSystem, fs)
      return dir
    })

    const write: Registry.Service["write"] = <E>(
      project: ProjectKey,
      release: ReleaseKey,
      sid: StateId,
      data: Uint8Array | Stream.Stream<Uint8Array, E>
    ) =>
      Effect.gen(function*() {
        yield* ready
        const training = yield* unbound.get(releaseRef(project, release))
        const written = yield* upload(training.run.info, Layout.ARTIFACT.state(sid), data)
        training.states.set(sid, written)
        training.pending.set(Layout.sha256Tag(Layout.ARTIFACT.state(sid)), written.sha256)
        if (training.pending.size >= PENDING_TAGS) {
          const batch = [...training.pending].map(([key, value]) => ({ key, value }))
          training.pending.clear()
          yield* mlflow.setTags(training.run.runId, batch).pipe(
            Effect.tapError(() =>
              Effect.sync(() => {
                for (const t of batch) if (!training.pending.has(t.key)) training.pending.set(t.key, t.value)
              })
            )
          )
        }
      }).pipe(Effect.withSpan("MlflowRegistry.write"))

    const stateNotFound = (where: string, sid: StateId) => new NotFound({ entity: "state", key: `${where}/${sid}` })

    const readStream: Registry.Service["readStream"] = (project, release, generation, sid) =>
      Stream.unwrap(
        Effect.gen(function*() {
          yield* ready
          const run = yield* generationRun(project, release, generation)
          const where = `${releaseName(project, release)}#${generation}`
          return download(run, Layout.ARTIFACT.state(sid)).pipe(
            Stream.catchTag("NotFound", () => Stream.fail(stateNotFound(where, sid)))
          )
        })
      ).pipe(Stream.withSpan("MlflowRegistry.readStream"))

    // read whole (one request, no stream), as it ends in memory anyway
    const read: Registry.Service["read"] = Effect.fn("MlflowRegistry.read")(
      function*(project, release, generation, sid) {
        yield* ready
        const run = yield* generationRun(project, release, generation)
        const where = `${releaseName(project, release)}#${generation}`
        const bytes = yield* readWhole(run, Layout.ARTIFACT.state(sid)).pipe(
          Effect.catchTag("NotFound", () => Effect.fail(stateNotFound(where, sid)))
        )
        return plain(bytes)
      }
    )

    const open: Registry.Service["open"] = Effect.fn("MlflowRegistry.open")(function*(project, release, generation) {
      yield* ready
      const run = yield* generationRun(project, release, generation)
      const bytes = yield* readWhole(run, Layout.ARTIFACT.tag).pipe(
        Effect.catchTag("NotFound", () =>
          Effect.fail(new Empty({ entity: "tag", key: `${releaseName(project, release)}#${generation}` })))
      )
      return yield* Tag.decode(bytes)
    })

    /**
     * After committing `generation`, checks for another run committed with the same number. The run that keeps it is
     * the first by `Layout.byCommit`; the other moves to the next free number (and checks again). Returns the number
     * this run holds in the end.
     */
    const settle = (
      rel: ReleaseRuns,
      own: Run,
      generation: GenerationKey,
      display: (generation: GenerationKey) => Display
    ) =>
      Effect.gen(function*() {
        let number = generation
        while (true) {
          // the end time is taken here and sent beside the search (one round trip, not two): this run's own entry
          // in what the search finds is replaced by what the update makes of it
          const endTime = yield* commitInstant
          const [info, found] = yield* Effect.all(
            [mlflow.updateRun(own.runId, { status: "FINISHED", endTime }), committedAt(rel, number)],
            { concurrency: 2 }
          )
          const holders = yield* holdersAt(rel, number, withRunUpdate(own, info, [
            { key: Layout.TAG.commit, value: String(number) }
          ]), found)
          if (holders.length === 0 || holders[0]!.runId === own.runId) return [number, info] as const
          const taken = yield* committedRuns(rel)
          const next = GenerationKey.next(Arr.reduce([...taken.keys()], number, (a, b) => (b > a ? b : a)))
          // back to "in progress" first, so that nobody mistakes the move for a settled commit of `next`
          yield* mlflow.updateRun(own.runId, { status: "RUNNING" })
          // renamed and re-described in the same request that moves the commit (which goes last)
          const shown = display(next)
          yield* mlflow.setTags(own.runId, [...shown.tags, { key: Layout.TAG.commit, value: String(next) }], {
            metrics: shown.metrics
          })
          number = next
        }
      })

    /**
     * The runs holding `generation`, best first, once no other commit of it is in progress: those are waited for
     * (they are about to take their end time), up to `commitWait`; one still in progress then is taken as abandoned.
     * `own` is this run as it stands (whatever a search found of it), `found` the first search's result.
     */
    const holdersAt = (rel: ReleaseRuns, generation: GenerationKey, own: Run, found: ReadonlyArray<Run>) =>
      Effect.gen(function*() {
        const othersPending = (runs: ReadonlyArray<Run>) =>
          runs.some((r) => r.runId !== own.runId && Layout.isPending(r))
        const withOwn = (runs: ReadonlyArray<Run>) =>
          Arr.sort([own, ...runs.filter((r) => r.runId !== own.runId)], Layout.byCommit)
        let holders = withOwn(found)
        const deadline = (yield* now) + commitWait
        let pause = 10
        while (othersPending(holders) && (yield* now) < deadline) {
          yield* Effect.sleep(Duration.millis(pause))
          pause = Math.min(pause * 2, 500)
          holders = withOwn(yield* committedAt(rel, generation))
        }
        return holders.filter((r) => r.runId === own.runId || !Layout.isPending(r))
      })

    const close: Registry.Service["close"] = Effect.fn("MlflowRegistry.close")(
      function*(project, release, generation, tag) {
        yield* ready
        if (!Tag.isTrained(tag)) {
          // ForML's Tag.loads needs [training].timestamp: such a generation could never be opened in ForML
          return yield* new InvalidInput({
            kind: "Tag",
            input: Tag.encode(tag),
            reason: "a generation tag needs a training timestamp (ForML cannot open one without)"
          })
        }
        const text = Tag.encode(tag)
        const ref = releaseRef(project, release)
        const rel = yield* releases.get(ref)
        const where = `${releaseName(project, release)} (training ${session})`
        // the training of this instance; a cold instance can only close a tag without states, or resume a session
        const current = yield* Effect.gen(function*() {
          const cached = yield* unbound.peek(ref)
          if (Option.isSome(cached)) return cached.value
          if (sessionGiven) {
            const existing = yield* sessionRuns(rel)
            if (Arr.isNonEmptyReadonlyArray(existing)) {
              const resumed = training(existing[0])
              yield* unbound.set(ref, resumed)
              return resumed
            }
          }
          if (tag.states.length > 0) return yield* stateNotFound(where, tag.states[0]!)
          return yield* unbound.get(ref)
        })
        const { run, states } = current
        // nothing commits that is not stored whole: every state of the tag is in this run, with the size this
        // instance wrote (a state of a resumed session, written by another instance, only needs to be there)
        yield* checkStored(
          run.info,
          tag.states.map((sid) => ({ name: Layout.ARTIFACT.state(sid), size: states.get(sid)?.size })),
          (index) => stateNotFound(where, tag.states[index]!)
        )
        const bytes = utf8.encode(text)
        yield* mlflow.uploadArtifact(run.info, Layout.ARTIFACT.tag, bytes)
        // what MLflow's UI shows of the generation (name, description, the tag's numbers as metrics), sent with the
        // commit: no request of its own
        const closedAt = yield* now
        const display = (n: GenerationKey): Display => ({
          tags: [
            { key: Layout.TAG.runName, value: Layout.generationRunName(project, release.toString(), n) },
            { key: Layout.TAG.note, value: Layout.generationNote(project, release.toString(), n, tag.states.length) }
          ],
          metrics: Layout.generationMetrics(tag, n, closedAt)
        })
        const shown = display(generation)
        const committed: ReadonlyArray<Layout.TagPair> = [
          ...[...current.pending].map(([key, value]) => ({ key, value })),
          { key: Layout.sha256Tag(Layout.ARTIFACT.tag), value: sha256(bytes) },
          ...shown.tags,
          // the commit tag goes last in the batch: MLflow writes a batch in order (sqlite: in one transaction)
          { key: Layout.TAG.commit, value: String(generation) }
        ]
        yield* mlflow.setTags(run.runId, committed, { metrics: shown.metrics })
        // committed: whatever happens next, the next write starts a new training
        return yield* Effect.gen(function*() {
          const [used, info] = yield* settle(rel, withRunUpdate(run, run.info, committed), generation, display)
          // this run now holds `used` for good: later reads of it need no search
          yield* generationsMemo.set(
            generationRef(project, release, used),
            withRunUpdate(run, info, [...committed, { key: Layout.TAG.commit, value: String(used) }])
          )
          return used
        }).pipe(Effect.ensuring(unbound.invalidate(ref)))
      }
    )

    return Registry.of({
      projects,
      releases: listReleases,
      generations: listGenerations,
      push,
      pull,
      mount,
      write,
      read,
      readStream,
      close,
      open
    })
  })

/** The Registry layer over the Mlflow layer in the context (a staging directory lives as long as the layer). */
export const layer = (
  options: MlflowRegistryOptions = {}
): Layer.Layer<Registry, never, Mlflow | FileSystem.FileSystem | Path.Path> => Layer.scoped(Registry, make(options))

export const MlflowRegistry = { make, layer } as const
