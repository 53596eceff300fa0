import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// A run directory and the one writer of its files: `config.json`, `tokenizer.model` (a copy: the directory is
/// self-contained), `latest.safetensors` and `best.safetensors` (by validation loss), `metrics.jsonl`. Every file
/// but the metrics log is written atomically (temp file, fsync, rename).
public final class RunDirectory {
    public let path: String
    private var metrics: FileHandle?

    public var latestCheckpoint: String { path + "/latest.safetensors" }
    public var bestCheckpoint: String { path + "/best.safetensors" }
    public var tokenizerPath: String { path + "/tokenizer.model" }
    public var metricsPath: String { path + "/metrics.jsonl" }

    /// Claims `path`: a new run refuses an existing non-empty directory unless `force` (then its run files are
    /// deleted); the directory is created and must be writable. Nothing is trained before this succeeds.
    public init(claiming path: String, force: Bool, resuming: Bool) throws {
        self.path = path
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if !resuming, fm.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw UserError("--out \(path) exists and is not a directory") }
            let contents = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            if !contents.isEmpty && !force {
                throw UserError("run directory \(path) already exists; continue it with --resume \(path), overwrite it with --force, or choose another --out")
            }
        }
        do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw UserError("cannot create run directory \(path): \(error.localizedDescription); choose a writable --out")
        }
        let probe = path + "/.write-test-\(getpid())"
        guard fm.createFile(atPath: probe, contents: Data("ok".utf8)) else {
            throw UserError("run directory \(path) is not writable; choose a writable --out")
        }
        try? fm.removeItem(atPath: probe)
        if force && !resuming {
            for file in [latestCheckpoint, bestCheckpoint, metricsPath, path + "/config.json", tokenizerPath] { try? fm.removeItem(atPath: file) }
        }
    }

    /// The latest checkpoint of the run in `directory`, to resume from.
    public static func resumePoint(in directory: String) throws -> (file: SafeTensors, state: CheckpointState, config: TrainConfig) {
        let path = directory + "/latest.safetensors"
        guard FileManager.default.fileExists(atPath: path) else {
            throw UserError("no checkpoint to resume in \(directory) (expected \(path)); start a new run with --out")
        }
        let file: SafeTensors
        do { file = try SafeTensors(path: path) } catch let e as UserError {
            throw UserError("cannot resume: \(e.message) (the checkpoint is corrupt; best.safetensors may still be usable)")
        }
        let state = try Checkpoint.read(file, path: path)
        guard let stored = state.extra[TrainingMetadata.configKey] else {
            throw UserError("\(path) is not a training checkpoint (no \(TrainingMetadata.configKey) in its metadata)")
        }
        return (file, state, try TrainConfig.fromJSON(stored))
    }

    /// The run's configuration and, for a new run, its tokenizer; opens the metrics log for appending.
    func begin(config: TrainConfig, tokenizer: [UInt8]?) throws {
        if let tokenizer { try AtomicFile.write(tokenizer, to: tokenizerPath) }
        try AtomicFile.write(config.json() + "\n", to: path + "/config.json")
        let fm = FileManager.default
        if !fm.fileExists(atPath: metricsPath) { _ = fm.createFile(atPath: metricsPath, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: metricsPath) else { throw UserError("cannot write \(metricsPath)") }
        h.seekToEndOfFile()
        metrics = h
    }

    /// Writes `latest.safetensors` (and `best.safetensors` when `best`).
    func saveCheckpoint(_ state: CheckpointState, model: LanguageModel, optimizer: AdamW, best: Bool) throws {
        try Checkpoint.write(state, model: model, optimizer: optimizer, to: latestCheckpoint)
        if best { try Checkpoint.write(state, model: model, optimizer: optimizer, to: bestCheckpoint) }
    }

    /// Appends one record to `metrics.jsonl` (NaN and infinities become null: JSON has none).
    func appendMetrics(_ record: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: record.mapValues(Self.finite), options: [.sortedKeys]) else { return }
        metrics?.write(data + Data("\n".utf8))
    }

    static func finite(_ v: Any) -> Any {
        if let d = v as? Double, !d.isFinite { return NSNull() }
        if let a = v as? [Double] { return a.map { $0.isFinite ? $0 as Any : NSNull() } }
        return v
    }

    deinit { try? metrics?.close() }
}

/// The trainer's own checkpoint metadata (carried in `CheckpointState.extra`).
enum TrainingMetadata {
    static let configKey = "ngpt.config"

    static func extra(_ config: TrainConfig, step: Int) -> [String: String] {
        [
            configKey: config.json(),
            "ngpt.rng": "{\"generator\": \"splitmix64\", \"seed\": \(config.seed), \"next_micro_step\": \(step * config.gradAccum)}",
            "ngpt.sampler": "{\"seed\": \(config.seed), \"next_step\": \(step), \"batch\": \(config.batchSize), \"context\": \(config.context), \"grad_accum\": \(config.gradAccum)}",
        ]
    }
}
