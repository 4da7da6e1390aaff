/**
 * The tracking endpoints of the Http layer: experiments and runs, each one or a few REST calls through an `Exchange`.
 *
 * @internal
 */
import { Chunk, Clock, Effect, Either, Option, Ref, Stream } from "effect"
import type { Schema } from "effect"
import { InvalidInput, MlflowApiError, NotFound } from "../../errors.js"
import * as Filter from "../Filter.js"
import {
  type CreateRunOptions,
  type KeyValue,
  type LogBatchExtras,
  type Run,
  type SearchExperimentsOptions,
  type SearchRunsOptions,
  type UpdateRunOptions,
  validateExtras,
  validateTagKey
} from "../Mlflow.js"
import {
  checkFilter,
  checkPageSize,
  DEFAULT_PAGE_SIZE,
  EXPERIMENT_FILTER_ATTRIBUTES,
  type FilterAttributes,
  RUN_FILTER_ATTRIBUTES
} from "../semantics.js"
import * as Wire from "../wire.js"
import { Acknowledged, type Exchange, isRetryable, pages, readText, type Subject, unexpected } from "./httpExchange.js"

/** Tags a log-batch carries at the most. */
const LOG_BATCH_TAGS = 100

/** A filter checked as the server checks it, rendered ("" for none). */
const renderFilter = (
  filter: Filter.Filter | undefined,
  attributes: FilterAttributes
): Either.Either<string, InvalidInput> =>
  filter === undefined ? Either.right("") : Either.flatMap(checkFilter(filter, attributes), Filter.render)

/** Every key checked; the tags copied as plain `{ key, value }` objects (what goes on the wire). */
const checkTags = (tags: ReadonlyArray<KeyValue>): Either.Either<ReadonlyArray<KeyValue>, InvalidInput> =>
  Either.all(tags.map((t) => Either.map(validateTagKey(t.key), () => ({ key: t.key, value: t.value }))))

const checkId = (kind: string, id: string): Either.Either<string, InvalidInput> =>
  id === "" ? Either.left(new InvalidInput({ kind, input: id, reason: "empty" })) : Either.right(id)

/** A file-store server's refusal of its own unescaped `name = '…'` filter, met by a name holding `'`. */
const isUnquotedNameRefusal = (name: string) => (e: unknown): e is MlflowApiError =>
  name.includes("'") && e instanceof MlflowApiError && e.status === 400 &&
  e.errorCode === "INVALID_PARAMETER_VALUE" && /filter/i.test(e.detail)

/**
 * The pages of a search: `path` posted with `body`, then again with each page token the server hands back, each reply
 * decoded with `schema` and split by `items` into the page's items and the next token. A NotFound from a search makes
 * no sense: it is reported as the API error it was.
 */
const searchPages = <R, I, A>(
  { call, post }: Exchange,
  path: string,
  body: Readonly<Record<string, unknown>>,
  schema: Schema.Schema<R, I>,
  subject: Subject,
  items: (reply: R) => readonly [ReadonlyArray<A>, string | undefined]
) =>
  pages((token) =>
    Effect.map(
      call(
        post(path, Option.match(token, { onNone: () => body, onSome: (t) => ({ ...body, page_token: t }) })),
        schema,
        subject
      ),
      items
    ).pipe(Effect.catchTag("NotFound", unexpected))
  )

/** The experiment calls. */
const experiments = (exchange: Exchange) => {
  const { call, create, get, post } = exchange
  /** The reply of an action without a result: MLflow answers `{}`, so anything but a JSON object is suspect. */
  const ignore = Acknowledged

  const getExperiment = Effect.fn("Mlflow.getExperiment")(function*(experimentId: string) {
    const r = yield* call(
      get("experiments/get", { experiment_id: experimentId }),
      Wire.GetExperimentResponse,
      { entity: "experiment", key: experimentId }
    )
    return Wire.toExperiment(r.experiment)
  })

  const getExperimentByName = Effect.fn("Mlflow.getExperimentByName")(function*(name: string) {
    const subject = { entity: "experiment", key: name }
    return yield* call(get("experiments/get-by-name", { experiment_name: name }), Wire.GetExperimentResponse, subject)
      .pipe(
        Effect.map((r) => Wire.toExperiment(r.experiment)),
        // a server on a file store turns the name into the filter `name = '<name>'` unescaped, so a name holding
        // `'` is refused there: the same look-up as a search whose filter quotes the name properly
        Effect.catchIf(isUnquotedNameRefusal(name), (refusal) => experimentNamed(name, refusal))
      )
  })

  /** The experiment of that exact name in any lifecycle stage, as get-by-name answers, through a search. */
  const experimentNamed = (name: string, refusal: MlflowApiError) =>
    Filter.render(Filter.and(Filter.attribute("name", name))).pipe(
      Effect.mapError(() => refusal),
      Effect.flatMap((filter) =>
        call(
          post("experiments/search", { max_results: 2, view_type: "ALL", filter }),
          Wire.SearchExperimentsResponse,
          { entity: "experiment", key: name }
        )
      ),
      Effect.flatMap((r) => {
        const found = r.experiments.map(Wire.toExperiment).find((e) => e.name === name)
        return found === undefined
          ? Effect.fail(new NotFound({ entity: "experiment", key: name }))
          : Effect.succeed(found)
      })
    )

  const createExperiment = Effect.fn("Mlflow.createExperiment")(function*(
    name: string,
    opts?: { readonly tags?: ReadonlyArray<KeyValue> }
  ) {
    if (name.trim() === "") {
      return yield* new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" })
    }
    const tags = yield* checkTags(opts?.tags ?? [])
    const r = yield* create(
      post("experiments/create", tags.length === 0 ? { name } : { name, tags }),
      Wire.CreateExperimentResponse,
      { entity: "experiment", key: name }
    ).pipe(
      // a file-store server checks the new name through its own unescaped filter first: no such experiment can be
      // made there, by any client
      Effect.catchIf(
        isUnquotedNameRefusal(name),
        () =>
          new InvalidInput({
            kind: "ExperimentName",
            input: name,
            reason: "this server's file store cannot create an experiment whose name holds ' (it checks the name " +
              "through a filter it does not escape)"
          })
      )
    )
    return r.experiment_id
  })

  const experimentAction = (action: "delete" | "restore") =>
    Effect.fn(`Mlflow.${action}Experiment`)(function*(experimentId: string) {
      yield* call(post(`experiments/${action}`, { experiment_id: experimentId }), ignore, {
        entity: "experiment",
        key: experimentId
      })
    })

  const searchExperiments = (opts: SearchExperimentsOptions = {}) =>
    Stream.unwrap(
      Effect.gen(function*() {
        const filter = yield* renderFilter(opts.filter, EXPERIMENT_FILTER_ATTRIBUTES)
        const maxResults = yield* checkPageSize(opts.pageSize ?? DEFAULT_PAGE_SIZE)
        const body = {
          max_results: maxResults,
          view_type: opts.viewType ?? "ACTIVE_ONLY",
          ...(filter === "" ? {} : { filter })
        }
        return searchPages(
          exchange,
          "experiments/search",
          body,
          Wire.SearchExperimentsResponse,
          { entity: "experiment", key: filter },
          (r) => [r.experiments.map(Wire.toExperiment), r.next_page_token] as const
        )
      })
    ).pipe(Stream.withSpan("Mlflow.searchExperiments"))

  return {
    getExperiment,
    getExperimentByName,
    createExperiment,
    deleteExperiment: experimentAction("delete"),
    restoreExperiment: experimentAction("restore"),
    searchExperiments
  }
}

/** The run calls. */
const runs = (exchange: Exchange) => {
  const { call, get, post } = exchange
  const ignore = Acknowledged

  const createRun = Effect.fn("Mlflow.createRun")(function*(opts: CreateRunOptions) {
    yield* checkId("ExperimentId", opts.experimentId)
    const tags = yield* checkTags(opts.tags ?? [])
    const startTime = opts.startTime ?? (yield* Clock.currentTimeMillis)
    const request = post("runs/create", {
      experiment_id: opts.experimentId,
      start_time: startTime,
      ...(opts.runName === undefined ? {} : { run_name: opts.runName }),
      ...(opts.userId === undefined ? {} : { user_id: opts.userId }),
      ...(tags.length === 0 ? {} : { tags })
    })
    const subject = { entity: "experiment", key: opts.experimentId }
    const key = tags.find((t) => t.key === opts.idempotencyTag)
    if (key === undefined) return Wire.toRun((yield* call(request, Wire.RunResponse, subject)).run)
    // Every attempt sends the same body. Once an attempt's reply is lost (a reset, a body cut short, a timeout),
    // the server may have made the run: the next attempt looks for it by its unique tag before creating again.
    const lost = yield* Ref.make(false)
    const once = Effect.gen(function*() {
      if (yield* Ref.get(lost)) {
        const made = yield* findCreated(opts.experimentId, key)
        if (Option.isSome(made)) return Either.left(made.value)
      }
      const text = yield* exchange.attempt(request, subject, readText).pipe(
        Effect.tapError((e) => isRetryable(e) && e.error._tag === "TransportError" ? Ref.set(lost, true) : Effect.void)
      )
      return Either.right(text)
    })
    const outcome = yield* exchange.withRetries(once).pipe(Effect.catchTag("AlreadyExists", unexpected))
    if (Either.isLeft(outcome)) return outcome.left
    return Wire.toRun((yield* exchange.decode(request, Wire.RunResponse, outcome.right)).run)
  })

  /** The earliest active run of an experiment carrying `tag` (none when the search itself fails). */
  const findCreated = (experimentId: string, tag: KeyValue) =>
    searchRuns({ experimentIds: [experimentId], filter: Filter.and(Filter.tag(tag.key, tag.value)) }).pipe(
      Stream.runCollect,
      Effect.map((runs) =>
        Chunk.reduce(
          runs,
          Option.none<Run>(),
          (best, run) =>
            Option.isSome(best) && (best.value.info.startTime < run.info.startTime ||
                (best.value.info.startTime === run.info.startTime && best.value.info.runId <= run.info.runId))
              ? best
              : Option.some(run)
        )
      ),
      Effect.orElseSucceed(() => Option.none<Run>())
    )

  const getRun = Effect.fn("Mlflow.getRun")(function*(runId: string) {
    const r = yield* call(get("runs/get", { run_id: runId }), Wire.RunResponse, { entity: "run", key: runId })
    return Wire.toRun(r.run)
  })

  const searchRuns = (opts: SearchRunsOptions) =>
    Stream.unwrap(
      Effect.gen(function*() {
        const filter = yield* renderFilter(opts.filter, RUN_FILTER_ATTRIBUTES)
        const maxResults = yield* checkPageSize(opts.pageSize ?? DEFAULT_PAGE_SIZE)
        if (opts.experimentIds.length === 0) return Stream.empty
        const body = {
          experiment_ids: opts.experimentIds,
          filter,
          run_view_type: opts.viewType ?? "ACTIVE_ONLY",
          max_results: maxResults,
          order_by: opts.orderBy ?? []
        }
        return searchPages(
          exchange,
          "runs/search",
          body,
          Wire.SearchRunsResponse,
          { entity: "run", key: filter },
          (r) => [r.runs.map(Wire.toRun), r.next_page_token] as const
        )
      })
    ).pipe(Stream.withSpan("Mlflow.searchRuns"))

  const setTag = Effect.fn("Mlflow.setTag")(function*(runId: string, key: string, value: string) {
    yield* checkId("RunId", runId)
    yield* validateTagKey(key)
    yield* call(post("runs/set-tag", { run_id: runId, key, value }), ignore, { entity: "run", key: runId })
  })

  const setTags = Effect.fn("Mlflow.setTags")(function*(
    runId: string,
    tags: ReadonlyArray<KeyValue>,
    extras?: LogBatchExtras
  ) {
    yield* checkId("RunId", runId)
    const checked = yield* checkTags(tags)
    yield* validateExtras(extras)
    const metrics = (extras?.metrics ?? []).map(({ key, step, timestamp, value }) => ({ key, value, timestamp, step }))
    const params = (extras?.params ?? []).map(({ key, value }) => ({ key, value }))
    // metrics and params ride in the first batch
    for (let i = 0; i === 0 || i < checked.length; i += LOG_BATCH_TAGS) {
      const batch = checked.slice(i, i + LOG_BATCH_TAGS)
      const first = i === 0
      if (batch.length === 0 && !(first && (metrics.length > 0 || params.length > 0))) break
      yield* call(
        post("runs/log-batch", {
          run_id: runId,
          ...(first && metrics.length > 0 ? { metrics } : {}),
          ...(first && params.length > 0 ? { params } : {}),
          tags: batch
        }),
        ignore,
        { entity: "run", key: runId }
      )
    }
  })

  const runAction = (action: "delete" | "restore") =>
    Effect.fn(`Mlflow.${action}Run`)(function*(runId: string) {
      yield* call(post(`runs/${action}`, { run_id: runId }), ignore, { entity: "run", key: runId })
    })

  const updateRun = Effect.fn("Mlflow.updateRun")(function*(runId: string, opts: UpdateRunOptions) {
    yield* checkId("RunId", runId)
    const r = yield* call(
      post("runs/update", {
        run_id: runId,
        ...(opts.status === undefined ? {} : { status: opts.status }),
        ...(opts.endTime === undefined ? {} : { end_time: opts.endTime }),
        ...(opts.runName === undefined ? {} : { run_name: opts.runName })
      }),
      Wire.UpdateRunResponse,
      { entity: "run", key: runId }
    )
    return Wire.toRunInfo(r.run_info)
  })

  return {
    createRun,
    getRun,
    searchRuns,
    setTag,
    setTags,
    deleteRun: runAction("delete"),
    restoreRun: runAction("restore"),
    updateRun
  }
}

/** Every experiment and run call of the Mlflow service over `exchange`. */
export const make = (exchange: Exchange) => ({ ...experiments(exchange), ...runs(exchange) })
