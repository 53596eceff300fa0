import Dispatch
import Foundation
import Kernels
import NGPT
import Tokenizer

public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

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

/// The training loop: data, model, recipe, evaluation, checkpoints, metrics.
public final class Trainer {
    public private(set) var config: TrainConfig
    public let runDirectory: String
    let resumeFrom: Checkpoint?
    let resumeFile: SafeTensors?
    let printer: ProgressPrinter
    let stop: StopRequest?
    /// Train at most this many steps in this invocation, then checkpoint and return (`--stop-after`).
    public var stopAfter: Int?
    /// Skip the configuration table and data-preparation messages (the comparison prints its own view).
    public var quiet = false

    /// Resolves the configuration (defaults < config file < flags; on resume the checkpoint's config replaces the
    /// defaults and architecture keys may not change) and claims the run directory. Nothing is trained yet, so
    /// every refusal (bad config, existing or unwritable directory, mismatched checkpoint) happens before any work.
    public init(fileSettings: [String: Any]?, flagSettings: [String: Any], resume: String?, force: Bool,
                printer: ProgressPrinter = ProgressPrinter(), stop: StopRequest? = nil) throws {
        self.printer = printer
        self.stop = stop
        let fm = FileManager.default
        var config = TrainConfig()
        if let dir = resume {
            let path = dir + "/latest.safetensors"
            guard fm.fileExists(atPath: path) else {
                throw TrainingError("no checkpoint to resume in \(dir) (expected \(path)); start a new run with --out")
            }
            let file: SafeTensors
            do { file = try SafeTensors(path: path) } catch let e as SafeTensorsError {
                throw TrainingError("cannot resume: \(e.message) (the checkpoint is corrupt; best.safetensors may still be usable)")
            }
            let checkpoint = try Checkpoint.read(file, path: path)
            config = checkpoint.config
            for (source, settings) in [("--config", fileSettings ?? [:]), ("flags", flagSettings)] {
                var probe = config
                try probe.apply(settings, source: source)
                for key in TrainConfig.architectureKeys where settings[key] != nil {
                    if Self.value(of: key, in: probe) != Self.value(of: key, in: config) {
                        throw TrainingError("\(source) sets \(key) to \(Self.value(of: key, in: probe)) but the checkpoint in \(dir) has \(Self.value(of: key, in: config)); architecture keys cannot change on resume")
                    }
                }
                if let out = settings["out"] as? String, URL(fileURLWithPath: out).standardizedFileURL != URL(fileURLWithPath: dir).standardizedFileURL {
                    throw TrainingError("--out \(out) differs from --resume \(dir); a resumed run continues in its own directory")
                }
                config = probe
            }
            config.out = dir
            resumeFrom = checkpoint
            resumeFile = file
        } else {
            if let file = fileSettings { try config.apply(file, source: "--config") }
            try config.apply(flagSettings, source: "flags")
            if config.out == nil {
                let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .current, formatOptions: [.withFullDate, .withTime])
                config.out = "checkpoints/\(config.model.rawValue)-\(stamp.replacingOccurrences(of: ":", with: ""))"
            }
            resumeFrom = nil
            resumeFile = nil
        }
        try config.validate()
        self.config = config
        runDirectory = config.out ?? "checkpoints/run"

        // Claim the run directory.
        var isDir: ObjCBool = false
        if resume == nil, fm.fileExists(atPath: runDirectory, isDirectory: &isDir) {
            guard isDir.boolValue else { throw TrainingError("--out \(runDirectory) exists and is not a directory") }
            let contents = (try? fm.contentsOfDirectory(atPath: runDirectory)) ?? []
            if !contents.isEmpty && !force {
                throw TrainingError("run directory \(runDirectory) already exists; continue it with --resume \(runDirectory), overwrite it with --force, or choose another --out")
            }
        }
        do { try fm.createDirectory(atPath: runDirectory, withIntermediateDirectories: true) } catch {
            throw TrainingError("cannot create run directory \(runDirectory): \(error.localizedDescription); choose a writable --out")
        }
        let probe = runDirectory + "/.write-test-\(getpid())"
        guard fm.createFile(atPath: probe, contents: Data("ok".utf8)) else {
            throw TrainingError("run directory \(runDirectory) is not writable; choose a writable --out")
        }
        try? fm.removeItem(atPath: probe)
        if force && resume == nil {
            for name in ["latest.safetensors", "best.safetensors", "metrics.jsonl", "config.json", "tokenizer.model"] {
                try? fm.removeItem(atPath: runDirectory + "/" + name)
            }
        }
    }

    static func value(of key: String, in c: TrainConfig) -> String {
        switch key {
        case "model": return c.model.rawValue
        case "layers": return "\(c.layers)"
        case "dim": return "\(c.dim)"
        case "heads": return "\(c.heads)"
        case "mlp-hidden": return "\(c.mlpHidden)"
        case "context": return "\(c.context)"
        case "vocab-size": return "\(c.vocabSize)"
        default: return "?"
        }
    }

    /// Trains to `config.steps` (or until a stop request), evaluating and checkpointing on the way.
    public func run() throws -> RunSummary {
        let out = printer
        Threads.configure(threads: config.threads)
        if !quiet { out.line(Threads.startupLine) }

        // Data (the tokenizer of a resumed run is the copy in its run directory).
        var dataOptions = config.dataOptions
        let runTokenizer = runDirectory + "/tokenizer.model"
        if resumeFrom != nil { dataOptions.tokenizerModel = runTokenizer }
        let data: PreparedData
        do { data = try DataPreparation.prepare(dataOptions, context: config.context) { if !self.quiet { out.line($0) } } } catch let e as DataError {
            throw TrainingError(e.message)
        }
        if data.tokenizer.vocabSize != config.vocabSize {
            if resumeFrom != nil || config.tokenizer == nil {
                throw TrainingError("the tokenizer has \(data.tokenizer.vocabSize) pieces but the model expects --vocab-size \(config.vocabSize)")
            }
            out.line("using the tokenizer's vocabulary size \(data.tokenizer.vocabSize) (from \(config.tokenizer ?? ""))")
            config.vocabSize = data.tokenizer.vocabSize
        }
        let tokenizerHash = SHA256.hex(SHA256.hash(data.tokenizer.modelBytes))
        let dataHash = SHA256.hex(data.train.header.sourceHash)
        if let r = resumeFrom, !r.dataSHA256.isEmpty, r.dataSHA256 != dataHash {
            out.line("warning: the training data differs from the checkpoint's (token cache hash changed); batches will not match the original run")
        }
        if resumeFrom == nil { try AtomicFile.write(data.tokenizer.modelBytes, to: runTokenizer) }
        try AtomicFile.write(config.json() + "\n", to: runDirectory + "/config.json")

        // Configuration table.
        let rows = config.tableRows + [("train / val tokens", "\(data.train.count) / \(data.validation.count)"),
                                       ("run directory", runDirectory)]
        let width = rows.map(\.0.count).max() ?? 0
        if !quiet {
            out.line("")
            for (k, v) in rows { out.line("  " + k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
            out.line("")
        }

        // Model and optimiser.
        let model = try makeModel(config.modelConfig)
        model.initialize(seed: UInt64(config.seed))
        let optimizer = AdamW(layout: model.layout, settings: .init(weightDecay: Float(config.decay), clipNorm: config.gradClip))
        var step = 0, tokensSeen = 0, bestVal = Double.infinity, lastVal = Double.nan, trainSeconds = 0.0
        if let r = resumeFrom, let file = resumeFile {
            try Checkpoint.load(file, into: model, optimizer: optimizer, path: runDirectory + "/latest.safetensors")
            step = r.step; tokensSeen = r.tokens; bestVal = r.bestValLoss; lastVal = r.valLoss; trainSeconds = r.wallSeconds
            out.line("resuming at step \(step) of \(config.steps) (best val loss \(String(format: "%.4f", bestVal)))")
        }
        let sampler = try BatchSampler(tokens: data.train, batch: config.batchSize, context: config.context, seed: UInt64(config.seed))
        let windows = try ValidationWindows(tokens: data.validation, context: config.context, maxWindows: config.evalWindows)
        let schedule = LRSchedule(config)
        let metrics = try MetricsLog(path: runDirectory + "/metrics.jsonl")
        let n = config.batchSize * config.context
        let inputs = UnsafeMutablePointer<Int32>.allocate(capacity: n), targets = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        defer { inputs.deallocate(); targets.deallocate() }
        let flopsPerToken = config.modelConfig.trainingFlopsPerToken

        func checkpoint(valLoss: Double, best: Bool) throws {
            let c = Checkpoint(config: config, step: step, tokens: tokensSeen, bestValLoss: bestVal, valLoss: valLoss,
                               tokenizerSHA256: tokenizerHash, dataSHA256: dataHash, wallSeconds: trainSeconds)
            try c.write(model: model, optimizer: optimizer, to: runDirectory + "/latest.safetensors")
            if best { try c.write(model: model, optimizer: optimizer, to: runDirectory + "/best.safetensors") }
        }

        func evaluate() -> Double {
            Evaluation.meanLoss(model: model, windows: windows.count, context: config.context, batch: config.batchSize) { w, i, t in
                windows.fill(window: w, inputs: i, targets: t)
            }
        }

        var recentStepSeconds: [Double] = []
        let startStep = step
        if step >= config.steps { out.line("the checkpoint is already at step \(step) of --steps \(config.steps); nothing to do") }
        while step < config.steps {
            let limitReached = stopAfter.map { step - startStep >= $0 } ?? false
            if let signalName = stop?.requested ?? (limitReached ? "--stop-after" : nil) {
                try checkpoint(valLoss: lastVal, best: false)
                out.finish()
                return RunSummary(runDirectory: runDirectory, steps: step, finalValLoss: lastVal, bestValLoss: bestVal,
                                  tokensPerSecond: Double((step - startStep) * config.tokensPerStep) / max(1e-9, recentStepSeconds.reduce(0, +)),
                                  trainSeconds: trainSeconds, interrupted: signalName)
            }
            let started = DispatchTime.now().uptimeNanoseconds
            let lr = schedule.lr(at: step)
            model.grads.zero()
            var loss = 0.0
            for micro in 0..<config.gradAccum {
                sampler.fill(step: step * config.gradAccum + micro, inputs: inputs, targets: targets)
                loss += model.forward(inputs: inputs, targets: targets, batch: config.batchSize) / Double(config.gradAccum)
                model.backward(lossScale: 1 / Float(config.gradAccum))
            }
            guard loss.isFinite else {
                throw TrainingError("the loss became \(loss) at step \(step + 1); stopped without saving it (the last good checkpoint in \(runDirectory) is intact); try a lower --lr")
            }
            let stats = optimizer.update(model, lr: Float(lr))
            guard stats.applied else {
                throw TrainingError("the gradient norm became \(stats.gradNorm) at step \(step + 1); stopped before the update (the last good checkpoint in \(runDirectory) is intact); try a lower --lr or --grad-clip")
            }
            step += 1
            tokensSeen += config.tokensPerStep
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            trainSeconds += seconds
            recentStepSeconds.append(seconds)
            if recentStepSeconds.count > 20 { recentStepSeconds.removeFirst() }
            let avg = recentStepSeconds.reduce(0, +) / Double(recentStepSeconds.count)
            let tokPerSec = Double(config.tokensPerStep) / avg
            let eta = avg * Double(config.steps - step)
            let line = String(format: "step %\(String(config.steps).count)d/%d | loss %.4f | lr %.2e | norm %.3f | %.0f ms | %.0f tok/s | %.1f GFLOP/s | ETA %@",
                              step, config.steps, loss, lr, stats.gradNorm, avg * 1000, tokPerSec, tokPerSec * flopsPerToken / 1e9,
                              formatDuration(eta))
            let logged = step % config.logEvery == 0 || step == config.steps || step == startStep + 1
            out.progress(line, periodic: logged)
            if logged {
                var record: [String: Any] = ["type": "train", "step": step, "tokens": tokensSeen, "train_loss": loss, "lr": lr,
                                             "grad_norm": stats.gradNorm, "tokens_per_s": tokPerSec, "wall_s": trainSeconds]
                if let ngpt = model as? NGPTModel {
                    let s = ngpt.scaleSummary()
                    record["alpha_attn"] = s.alphaAttn; record["alpha_mlp"] = s.alphaMLP; record["s_qk"] = s.sqk
                    record["s_u"] = s.su; record["s_v"] = s.sv; record["s_z_mean"] = s.szMean; record["s_z_max"] = s.szMax
                    record["max_row_norm_dev"] = Double(ngpt.maxRowNormDeviation())
                    record["row_norm_drift"] = Double(stats.rowNormDrift)
                }
                metrics.append(record)
            }

            // Evaluation (the training clock is stopped: only the step above is timed).
            if step % config.evalEvery == 0 || step == config.steps {
                let evalStart = DispatchTime.now().uptimeNanoseconds
                lastVal = evaluate()
                let improved = lastVal < bestVal
                if improved { bestVal = lastVal }
                var sample = ""
                if config.sampleTokens > 0 {
                    sample = (try? greedySample(model: model, tokenizer: data.tokenizer, tokens: config.sampleTokens)) ?? ""
                }
                try checkpoint(valLoss: lastVal, best: improved)
                let evalSeconds = Double(DispatchTime.now().uptimeNanoseconds - evalStart) / 1e9
                out.line(String(format: "step %d: val loss %.4f%@ (eval %.1fs)", step, lastVal, improved ? " (best)" : "", evalSeconds))
                if !sample.isEmpty {
                    out.line("  sample: " + sample.replacingOccurrences(of: "\n", with: " ↵ "))
                }
                metrics.append(["type": "eval", "step": step, "tokens": tokensSeen, "val_loss": lastVal, "best_val_loss": bestVal,
                                "lr": lr, "wall_s": trainSeconds, "eval_s": evalSeconds])
            }
        }
        out.finish()
        let measured = recentStepSeconds.isEmpty ? 0 : Double(config.tokensPerStep) / (recentStepSeconds.reduce(0, +) / Double(recentStepSeconds.count))
        return RunSummary(runDirectory: runDirectory, steps: step, finalValLoss: lastVal, bestValLoss: bestVal,
                          tokensPerSecond: measured, trainSeconds: trainSeconds, interrupted: nil)
    }
}

/// The mean loss over evaluation windows: the one evaluation loop, shared by the trainer's validation and
/// `ngpt-sample --perplexity` (so both give the same number for the same windows).
public enum Evaluation {
    /// Windows 0..<windows, each filled by `fill(window, inputs, targets)` ([context] each), run in batches of
    /// `batch`; the mean of the per-window mean losses.
    public static func meanLoss(model: LanguageModel, windows: Int, context T: Int, batch: Int,
                                fill: (Int, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) throws -> Void) rethrows -> Double {
        let inputs = UnsafeMutablePointer<Int32>.allocate(capacity: batch * T), targets = UnsafeMutablePointer<Int32>.allocate(capacity: batch * T)
        defer { inputs.deallocate(); targets.deallocate() }
        var total = 0.0, w = 0
        while w < windows {
            let b = min(batch, windows - w)
            for i in 0..<b { try fill(w + i, inputs + i * T, targets + i * T) }
            total += model.forward(inputs: inputs, targets: targets, batch: b) * Double(b)
            w += b
        }
        return total / Double(max(1, windows))
    }
}

/// Greedy continuation from BOS (or `prompt`) with the model's single-token KV-cache decoder: the short sample
/// printed at each evaluation.
public func greedySample(model: LanguageModel, tokenizer: SentencePieceModel, tokens count: Int, prompt: [Int32] = []) throws -> String {
    let T = model.config.context, V = model.config.vocabSize
    let start = Array((prompt.isEmpty ? [max(0, tokenizer.bosId)] : prompt).suffix(T - 1))
    let decoder = makeDecoder(for: model)
    var logits = decoder.step(start[0])
    for t in start.dropFirst() { logits = decoder.step(t) }
    var generated: [Int32] = []
    while generated.count < min(count, T - start.count) {
        var best = 0
        for v in 1..<V where logits[v] > logits[best] { best = v }
        generated.append(Int32(best))
        if decoder.position < T { logits = decoder.step(Int32(best)) }
    }
    return try tokenizer.decode(generated.filter { $0 != tokenizer.bosId })
}
