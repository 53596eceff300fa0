import Cluster
import Common
import DataPipeline
import Dispatch
import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// What a finished (or interrupted) run reports.
public struct RunSummary: Sendable {
    public var runDirectory: String
    public var steps: Int
    public var finalValLoss: Double
    public var bestValLoss: Double
    public var tokensPerSecond: Double
    public var trainSeconds: Double
    public var interrupted: String?
}

/// The training loop and the parts it calls: the run directory (the one writer of files), the batch source, the
/// gradient synchronisation, evaluation with checkpointing, and the observers (progress line, metrics log).
public final class Trainer {
    public private(set) var config: TrainConfig
    /// The run directory; nil on the processes of a data-parallel job other than rank 0 (they write nothing).
    public let directory: RunDirectory?
    public var runDirectory: String { directory?.path ?? config.output.directory ?? "" }
    /// The data-parallel job this process is one of (nil: a single process).
    public let world: World?
    let resumePoint: (file: SafeTensors, state: CheckpointState)?
    /// The run a new fine-tuning run starts from (`--init-from`); nil otherwise and on resume.
    let base: BaseRun?
    let printer: ProgressPrinter
    let stop: StopRequest?
    /// Train at most this many steps in this invocation, then checkpoint and return (`--stop-after`).
    public var stopAfter: Int?
    /// Skip the configuration table and data-preparation messages (the comparison prints its own view).
    public var quiet = false
    /// Makes the gradients the global batch's before the update (data-parallel training plugs in here).
    public var gradientSync: GradientSync = LocalGradients()
    /// Whether the steps' loss and updates print and are recorded here (rank 0 of a job, or a single process).
    var writes: Bool { world?.isRoot ?? true }

    /// Resolves the configuration (`TrainConfig.resolve`), checks that it fits in memory and claims the run
    /// directory. Nothing is trained yet, so every refusal (bad config, too little memory, a directory in use,
    /// existing or unwritable, a checkpoint from another run) comes before any work; a new run's directory is
    /// created only when its configuration is valid.
    ///
    /// In a data-parallel job only rank 0 touches the run directory: it resolves the configuration (reading any
    /// checkpoint) and sends it to the other processes, which receive the weights later (`shareModel`).
    public init(
        fileSettings: Settings?, flagSettings: Settings, resume: String?, force: Bool,
        printer: ProgressPrinter = ProgressPrinter(), stop: StopRequest? = nil, world: World? = nil
    ) throws {
        self.world = world
        self.printer = printer
        self.stop = stop
        let processes = world?.size ?? 1
        if let world, !world.isRoot {
            config = try TrainConfig.fromJSON(world.broadcast(""))
            directory = nil
            resumePoint = nil
            base = nil
            try MemoryEstimate(config).check()
            try GEMM.check(config.gemmPrecision)
            return
        }
        if let dir = resume {
            let directory = try RunDirectory(claiming: dir, force: false, resuming: true)
            let point = try directory.resumePoint()
            config = try TrainConfig.resolve(
                file: fileSettings, flags: flagSettings, resuming: (dir, point.config), processes: processes)
            resumePoint = (point.file, point.state)
            base = nil
            try MemoryEstimate(config).check()
            try GEMM.check(config.gemmPrecision)
            if point.config.processes != processes {
                printer.line(
                    "resuming a run of \(point.config.processes) process(es) on \(processes): grad-accum "
                        + "\(point.config.schedule.gradAccum) → \(config.schedule.gradAccum), "
                        + "\(config.tokensPerStep) tokens per step "
                        + "as before"
                )
            }
            self.directory = directory
        } else {
            let initFrom = (flagSettings["init-from"] ?? fileSettings?["init-from"])?.string
            base = try initFrom.map { try BaseRun($0) }
            config = try TrainConfig.resolve(file: fileSettings, flags: flagSettings, base: base, processes: processes)
            try MemoryEstimate(config).check()
            try GEMM.check(config.gemmPrecision)
            directory = try RunDirectory(
                claiming: config.output.directory ?? "checkpoints/run", force: force, resuming: false)
            resumePoint = nil
        }
        if let world { _ = world.broadcast(config.json()) }
    }

    /// Trains to `config.schedule.steps` (or until a stop request), evaluating and checkpointing on the way. A new run
    /// that fails before its first checkpoint leaves the directory as it found it (`RunDirectory.abandon`).
    public func run() throws -> RunSummary {
        do { return try GEMM.withPrecision(config.gemmPrecision) { try train() } } catch {
            printer.finish()
            directory?.abandon()
            throw error
        }
    }

    func train() throws -> RunSummary {
        // The processes on one host share its cores (and none uses more than the launcher's binding gives it).
        Threads.configure(
            threads: config.output.threads > 0
                ? config.output.threads
                : world.map {
                    max(1, min(Threads.maxWorkers, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) / $0.localSize))
                })
        if !quiet { printer.line(Threads.startupLine) }
        if let world {
            let line =
                "process \(world.rank) of \(world.size) on \(world.host): \(Threads.count) threads "
                + "(\(world.localSize) process(es) on this host)"
            if world.isRoot { printer.line(line) } else { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        let data = try prepareData()
        if let reason = stop?.requested, resumePoint == nil, writes {
            throw UserError("\(reason) before training began: \(runDirectory) is left as it was")
        }
        try directory?.begin(config: config, tokenizer: resumePoint == nil ? data.tokenizer.modelBytes : nil)
        if !quiet { printConfiguration(data) }
        let (model, optimizer, resumed) = try makeModel()
        var state = resumed ?? CheckpointState(model: config.model)
        shareModel(model, optimizer, &state)
        state.model = config.model
        state.tokenizerSHA256 = SHA256.hex(SHA256.hash(data.tokenizer.modelBytes))
        state.dataSHA256 = data.train.sha256
        let batches = try BatchSource(tokens: data.train, config: config, rank: world?.rank ?? 0)
        let evaluation = try EvaluationRound(model: model, data: data, config: config, samples: writes)
        let curves = directory.map { CurvesWriter(directory: $0.path) }
        var observers: [TrainingObserver] = []
        if let directory, let curves {
            observers = [
                ProgressLine(printer: printer, flopsPerToken: config.model.trainingFlopsPerToken),
                MetricsRecorder(directory: directory, model: model), curves,
            ]
        }
        let schedule = LRSchedule(config)
        var timer = StepTimer()
        let startStep = state.step
        // Rank 0 writes; every process waits until the checkpoint is complete before it goes on.
        func save(_ checkpoint: CheckpointState, best: Bool) throws {
            if let directory {
                var checkpoint = checkpoint
                checkpoint.extra = TrainingMetadata.extra(config, step: checkpoint.step)
                try directory.saveCheckpoint(checkpoint, model: model, optimizer: optimizer, best: best)
            }
            world?.barrier()
        }
        if startStep >= config.schedule.steps {
            printer.line(
                "the checkpoint is already at step \(startStep) of --steps \(config.schedule.steps); nothing to do")
        }
        while state.step < config.schedule.steps {
            var reason =
                stop?.requested ?? (stopAfter.map { state.step - startStep >= $0 } == true ? "--stop-after" : nil)
            // every process stops together
            if let world, world.any(reason != nil) { reason = reason ?? "a stop request to another process" }
            if let reason {
                if directory?.isReplacing == true {
                    throw UserError(
                        "\(reason) before the new run's first checkpoint: the previous run in \(runDirectory) is "
                            + "restored unchanged (nothing was replaced)"
                    )
                }
                try save(state, best: false)
                printer.finish()
                return summary(state, tokensPerSecond: timer.tokensPerSecond(config.tokensPerStep), interrupted: reason)
            }
            timer.start()
            let lr = schedule.lr(at: state.step)
            model.grads.zero()
            var loss = 0.0
            for micro in 0..<config.schedule.gradAccum {
                batches.fill(step: state.step, micro: micro)
                // gradients summed over micro-batches and processes: the global mean's
                loss +=
                    model.forwardBackward(
                        inputs: batches.inputs, targets: batches.targets, batch: config.schedule.batchSize,
                        lossScale: 1 / Float(config.globalMicroBatches)) / Double(config.schedule.gradAccum)
            }
            gradientSync.synchronize(gradients: model.grads, loss: &loss)
            guard loss.isFinite else {
                throw UserError(
                    "the loss became \(loss.isNaN ? "nan" : "\(loss)") at step \(state.step + 1); stopped without "
                        + "saving it (the last good checkpoint in \(runDirectory) is intact); try a lower --lr"
                )
            }
            let update = optimizer.update(model, lr: Float(lr))
            guard update.applied else {
                throw UserError(
                    "the gradient norm became \(update.gradNorm.isNaN ? "nan" : "\(update.gradNorm)") at step "
                        + "\(state.step + 1); stopped before the update (the last good checkpoint in \(runDirectory) "
                        + "is intact); try a lower --lr or --grad-clip"
                )
            }
            state.step += 1
            state.tokens += config.tokensPerStep
            state.wallSeconds += timer.stop()
            let report = StepReport(
                step: state.step, steps: config.schedule.steps, loss: loss, lr: lr, gradNorm: update.gradNorm,
                tokens: state.tokens,
                trainSeconds: state.wallSeconds, recentSecondsPerStep: timer.recentMean,
                tokensPerSecond: timer.tokensPerSecond(config.tokensPerStep),
                logged: state.step % config.output.logEvery == 0 || state.step == config.schedule.steps
                    || state.step == startStep + 1)
            observers.forEach { $0.stepFinished(report) }

            if state.step % config.output.evalEvery == 0 || state.step == config.schedule.steps {
                let r = try evaluation.run(state: &state, lr: lr, save: save)
                observers.forEach { $0.evaluated(r) }
                try checkReplicas(model, step: state.step)
            }
        }
        printer.finish()
        curves?.draw(png: true)
        if let sync = gradientSync as? ProcessGradients, writes {
            printer.line(
                String(
                    format: "allreduce: %.1f ms per step on average (%.1f %% of the step time)",
                    sync.meanSeconds * 1000,
                    100 * sync.totalSeconds / max(state.wallSeconds - (resumed?.wallSeconds ?? 0), 1e-9)))
        }
        return summary(state, tokensPerSecond: timer.tokensPerSecond(config.tokensPerStep), interrupted: nil)
    }

    func summary(_ s: CheckpointState, tokensPerSecond: Double, interrupted: String?) -> RunSummary {
        RunSummary(
            runDirectory: runDirectory, steps: s.step, finalValLoss: s.valLoss, bestValLoss: s.bestValLoss,
            tokensPerSecond: tokensPerSecond, trainSeconds: s.wallSeconds, interrupted: interrupted)
    }

    /// The corpus, tokenizer and token caches (a resumed run uses the tokenizer copy in its directory). A
    /// `--tokenizer` whose vocabulary differs from `--vocab-size` sets it; otherwise a mismatch is an error.
    ///
    /// In a job, rank 0 prepares first (training the tokenizer and writing the caches), then the others encode
    /// their copy of the corpus with rank 0's tokenizer (cache hits on a shared file system) and check that their
    /// training tokens are the same as rank 0's.
    func prepareData() throws -> PreparedData {
        guard let world, world.size > 1 else { return try prepareLocal(tokenizer: nil) }
        if world.isRoot {
            let data = try prepareLocal(tokenizer: nil)
            world.barrier()
            _ = world.broadcast(data.tokenizer.modelBytes)
            _ = world.broadcast(data.train.sha256)
            return data
        }
        world.barrier()
        let bytes = world.broadcast([UInt8]())
        let path = NSTemporaryDirectory() + "ngpt-tokenizer-\(getpid()).model"
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw UserError("process \(world.rank) cannot write \(path); check the temporary directory (TMPDIR)")
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let data = try prepareLocal(tokenizer: path)
        let rootHash = world.broadcast("")
        guard data.train.sha256 == rootHash else {
            throw UserError(
                "process \(world.rank) on \(world.host) read other training data than process 0 "
                    + "(\(data.corpusPath)); every process must see the same corpus and --data-dir"
            )
        }
        return data
    }

    func prepareLocal(tokenizer: String?) throws -> PreparedData {
        var options = config.dataOptions
        if let directory, resumePoint != nil { options.tokenizerModel = directory.tokenizerPath }
        if let tokenizer { options.tokenizerModel = tokenizer }
        let show = !quiet && writes
        let periodic = Throttle(seconds: 30)
        let log = PrepareLog(
            line: { [printer] in if show { printer.line($0) } },
            progress: { [printer] in if show { printer.progress($0, periodic: periodic.due()) } },
            stopRequested: { [stop] in stop?.requested })
        let data = try DataPreparation.prepare(options, context: config.model.context, log: log)
        if data.tokenizer.vocabSize != config.model.vocabSize {
            if resumePoint != nil || (config.data.tokenizerModel == nil && tokenizer == nil) {
                throw UserError(
                    "the tokenizer has \(data.tokenizer.vocabSize) pieces but the model expects --vocab-size "
                        + "\(config.model.vocabSize)"
                )
            }
            if writes {
                printer.line(
                    "using the tokenizer's vocabulary size \(data.tokenizer.vocabSize) (from "
                        + "\(config.data.tokenizerModel ?? ""))"
                )
            }
            config.model.vocabSize = data.tokenizer.vocabSize
        }
        if let r = resumePoint?.state, !r.dataSHA256.isEmpty, r.dataSHA256 != data.train.sha256 {
            printer.line(
                "warning: the training data differs from the checkpoint's (token cache hash changed); batches will "
                    + "not match the original run"
            )
        }
        return data
    }

    func printConfiguration(_ data: PreparedData) {
        let rows =
            config.tableRows + [
                ("train / val tokens", "\(data.train.count) / \(data.validation.count)"),
                ("run directory", runDirectory),
            ]
        let width = rows.map(\.0.count).max() ?? 0
        printer.line("")
        for (k, v) in rows { printer.line("  " + k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
        printer.line("")
    }

    /// A freshly initialised model and optimiser, or the checkpoint's weights, moments and state when resuming.
    func makeModel() throws -> (LanguageModel, AdamW, CheckpointState?) {
        let model = try NGPT.makeModel(config.model)
        model.initialize(seed: UInt64(config.schedule.seed))
        let optimizer = AdamW(
            layout: model.layout, settings: .init(weightDecay: Float(config.decay), clipNorm: config.schedule.gradClip),
            multipliers: config.model.recipe.multipliers(model.layout, dim: config.model.dim))
        if let base, resumePoint == nil {
            try base.load(into: model)
            let loss = base.state.bestValLoss.isFinite ? String(format: ", val loss %.4f", base.state.bestValLoss) : ""
            printer.line(
                "fine-tuning from \(base.checkpointPath) (step \(base.state.step)\(loss)); a fresh optimiser, step 0")
        }
        guard let (file, state) = resumePoint, let directory else { return (model, optimizer, nil) }
        try Checkpoint.load(file, into: model, optimizer: optimizer, path: directory.latestCheckpoint)
        printer.line(
            "resuming at step \(state.step) of \(config.schedule.steps) (best val loss "
                + "\(String(format: "%.4f", state.bestValLoss)))"
        )
        return (model, optimizer, state)
    }

    /// Rank 0's weights, Adam moments and counters to every process of a job: they start identical and, with the
    /// same summed gradients and the same update, stay so.
    func shareModel(_ model: LanguageModel, _ optimizer: AdamW, _ state: inout CheckpointState) {
        guard let world, world.size > 1 else { return }
        for tensors in [model.params, optimizer.m, optimizer.v] {
            world.broadcast(tensors.pointer, count: tensors.count)
        }
        var numbers = [
            Double(state.step), Double(state.tokens), Double(optimizer.step), state.bestValLoss, state.valLoss,
            state.wallSeconds,
        ]
        numbers.withUnsafeMutableBytes { world.broadcast($0.baseAddress!, bytes: $0.count) }
        state.step = Int(numbers[0]); state.tokens = Int(numbers[1]); optimizer.step = Int(numbers[2])
        state.bestValLoss = numbers[3]; state.valLoss = numbers[4]; state.wallSeconds = numbers[5]
    }

    /// Stops every process with one message if their parameters differ (a bug, or a faulty host): two checksums
    /// compared across the job, cheap next to an evaluation.
    func checkReplicas(_ model: LanguageModel, step: Int) throws {
        guard let world, world.size > 1 else { return }
        let p = model.params.pointer
        var plain = 0.0, weighted = 0.0
        for i in 0..<model.params.count { plain += Double(p[i]); weighted += Double(p[i]) * Double(i % 251 + 1) }
        let high = world.max([plain, weighted]), low = world.min([plain, weighted])
        guard high == low else {
            throw UserError(
                "the processes' parameters differ at step \(step) (checksums \(low[0])…\(high[0])): the replicas "
                    + "diverged, which is a bug or a faulty host; the last checkpoint in \(runDirectory) is intact"
            )
        }
    }
}
