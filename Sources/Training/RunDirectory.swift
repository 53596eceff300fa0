import Common
import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// A run directory and the one writer of its files: `config.json`, `tokenizer.model` (a copy: the directory is
/// self-contained), `latest.safetensors` and `best.safetensors` (by validation loss), `metrics.jsonl`.
///
/// It never loses data:
/// - One writer at a time: an advisory lock on `.lock` (which holds the writer's pid) is held for the run's life
///   and released by the kernel when the process dies. Readers (ngpt-sample, ngpt-inspect) take no lock.
/// - Every file but the metrics log is written atomically (temp file, fsync, rename); temp files left by a killed
///   writer are removed when the directory is next claimed.
/// - `--force` destroys nothing before the new run has its first checkpoint: the old run's files are moved to
///   `.replaced/` when the new run starts writing, deleted after its first checkpoint, and moved back if it fails
///   (or, after a `kill -9`, when the directory is next claimed).
public final class RunDirectory {
    public let path: String
    private let lock: Int32
    private let resuming: Bool
    private let force: Bool
    /// The directory did not exist before this run.
    private let created: Bool
    private var hasCheckpoint = false
    /// This run has started writing its files (`begin`).
    private var began = false
    /// A `--force` run that moved the previous run aside and has not yet written its own first checkpoint: a stop
    /// now must bring the previous run back rather than replace it with a checkpoint of a run barely begun.
    public var isReplacing: Bool { movedAside && !hasCheckpoint }
    private var movedAside = false
    private var metrics: FileHandle?

    public var latestCheckpoint: String { path + "/latest.safetensors" }
    public var bestCheckpoint: String { path + "/best.safetensors" }
    public var tokenizerPath: String { path + "/tokenizer.model" }
    public var metricsPath: String { path + "/metrics.jsonl" }
    public var configPath: String { path + "/config.json" }
    var lockPath: String { path + "/.lock" }
    var replacedPath: String { path + "/" + Checkpoint.replacedDirectory }
    /// The files a run writes (what `--force` replaces).
    var runFiles: [String] {
        ["config.json", "tokenizer.model", "latest.safetensors", "best.safetensors", "metrics.jsonl"]
    }

    /// Claims `path` for this process. A new run refuses an existing run directory unless `force`; a resumed run
    /// needs the directory to exist. Takes the lock, then cleans what a killed writer left behind.
    public init(claiming path: String, force: Bool, resuming: Bool) throws {
        self.path = path
        self.resuming = resuming
        self.force = force
        let fm = FileManager.default
        var isDir: ObjCBool = false
        let exists = fm.fileExists(atPath: path, isDirectory: &isDir)
        if exists && !isDir.boolValue {
            throw UserError(
                resuming
                    ? "--resume \(path) is not a run directory (pass the --out directory of an ngpt-train run)"
                    : "--out \(path) exists and is not a directory; choose another --out")
        }
        if resuming && !exists {
            throw UserError("no run to resume in \(path) (the directory does not exist); start a new run with --out")
        }
        created = !exists
        if !exists { try Directories.create(path, fix: "choose a writable --out") }
        lock = open(path + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else {
            let reason = String(cString: strerror(errno))
            if created { try? fm.removeItem(atPath: path) }
            throw UserError("run directory \(path) is not writable (\(reason)); choose a writable --out")
        }
        guard Self.takeLock(lock, path: path) else {
            let holder = Self.lockHolder(path) ?? "?"
            close(lock)
            throw UserError(
                "run directory \(path) is in use by another ngpt-train (pid \(holder.isEmpty ? "?" : holder)); wait "
                    + "for it to finish or choose another --out"
            )
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(lock, 0)
        _ = pid.withUnsafeBytes { pwrite(lock, $0.baseAddress, $0.count, 0) }

        removeOrphans()
        let probe = path + "/.write-test-\(getpid())"
        guard fm.createFile(atPath: probe, contents: Data("ok".utf8)) else {
            throw UserError("run directory \(path) is not writable; choose a writable --out")
        }
        try? fm.removeItem(atPath: probe)
        if !resuming {
            let contents = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).filter { $0 != ".lock" }
            if !contents.isEmpty && !force {
                throw UserError(
                    "run directory \(path) already exists; continue it with --resume \(path), overwrite it with "
                        + "--force, or choose another --out"
                )
            }
        } else if !fm.fileExists(atPath: latestCheckpoint) {
            throw UserError(
                "no checkpoint to resume in \(path) (expected \(latestCheckpoint)); start a new run with --out")
        }
    }

    /// The pid the last holder of the lock wrote into it.
    private static func lockHolder(_ path: String) -> String? {
        (try? String(contentsOfFile: path + "/.lock", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Takes the lock without waiting for another process. When the holder recorded in the file is this process,
    /// the lock may be held by a child being spawned (between fork and exec it shares the open file description;
    /// the exec closes it): that clears within moments, so the claim retries for up to two seconds first.
    private static func takeLock(_ fd: Int32, path: String) -> Bool {
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
        guard lockHolder(path) == "\(getpid())" else { return false }
        for _ in 0..<200 {
            usleep(10_000)
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
        }
        return false
    }

    deinit {
        try? metrics?.close()
        close(lock)
    }

    /// What a writer killed while holding the lock left: temp files of atomic writes, the write probe, and a
    /// `--force` replacement that never reached its first checkpoint (the old run comes back) or did (it goes).
    private func removeOrphans() {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: path)) ?? []
        where name.contains(".tmp-") || name.hasPrefix(".write-test-") {
            try? fm.removeItem(atPath: path + "/" + name)
        }
        guard fm.fileExists(atPath: replacedPath) else { return }
        if fm.fileExists(atPath: latestCheckpoint) {
            try? fm.removeItem(atPath: replacedPath)
        } else {
            restoreReplaced()
        }
    }

    private func restoreReplaced() {
        let fm = FileManager.default
        for name in runFiles {
            let old = replacedPath + "/" + name, current = path + "/" + name
            try? fm.removeItem(atPath: current)
            if fm.fileExists(atPath: old) { try? fm.moveItem(atPath: old, toPath: current) }
        }
        try? fm.removeItem(atPath: replacedPath)
    }

    /// The latest checkpoint, to resume from. It must belong to this run: its model and tokenizer are the ones
    /// config.json and tokenizer.model record, and its values are finite (checked when loaded).
    func resumePoint() throws -> (file: SafeTensors, state: CheckpointState, config: TrainConfig) {
        let path = latestCheckpoint
        let file: SafeTensors
        do { file = try SafeTensors(path: path) } catch let e as UserError {
            throw UserError(
                "cannot resume: \(e.message) (the checkpoint is corrupt; best.safetensors may still be usable)")
        }
        let state = try Checkpoint.read(file, path: path, moments: true)
        guard let stored = state.extra[TrainingMetadata.configKey] else {
            throw UserError(
                "\(path) is not a training checkpoint (no \(TrainingMetadata.configKey) in its metadata); start a "
                    + "new run with --out"
            )
        }
        let config: TrainConfig
        do { config = try TrainConfig.fromJSON(stored) } catch let e as UserError {
            throw UserError(
                "\(path) holds an invalid training configuration (\(TrainingMetadata.configKey)): \(e.message)")
        }
        let foreign = "\(path) does not belong to the run in \(self.path)"
        guard config.model == state.model else {
            throw UserError(
                "\(foreign): its configuration and its model disagree; put the run's own checkpoint back or start a "
                    + "new run"
            )
        }
        if let text = try? String(contentsOfFile: configPath, encoding: .utf8),
            let run = try? TrainConfig.fromJSON(text)
        {
            for key in TrainingKey.all where key.role == .architecture && key.text(of: run) != key.text(of: config) {
                throw UserError(
                    "\(foreign): its \(key.name) is \(key.text(of: config)) but config.json has "
                        + "\(key.text(of: run)); put the run's own checkpoint back or start a new run"
                )
            }
        }
        if let bytes = FileManager.default.contents(atPath: tokenizerPath), !state.tokenizerSHA256.isEmpty,
            SHA256.hex(SHA256.hash([UInt8](bytes))) != state.tokenizerSHA256
        {
            throw UserError(
                "\(foreign): it was trained with another tokenizer than \(tokenizerPath); put the run's own "
                    + "checkpoint back or start a new run"
            )
        }
        return (file, state, config)
    }

    /// Starts writing: for a `--force` run, moves the old run's files aside; writes the configuration and, for a
    /// new run, the tokenizer; opens the metrics log (cutting a line a killed writer left half-written).
    func begin(config: TrainConfig, tokenizer: [UInt8]?) throws {
        let fm = FileManager.default
        if force && !resuming && runFiles.contains(where: { fm.fileExists(atPath: path + "/" + $0) }) {
            try? fm.removeItem(atPath: replacedPath)
            do {
                try fm.createDirectory(atPath: replacedPath, withIntermediateDirectories: false)
                for name in runFiles where fm.fileExists(atPath: path + "/" + name) {
                    try fm.moveItem(atPath: path + "/" + name, toPath: replacedPath + "/" + name)
                }
                movedAside = true
            } catch {
                restoreReplaced()
                throw UserError(
                    "cannot move the previous run in \(path) aside (\(error.localizedDescription)); check the "
                        + "directory's permissions"
                )
            }
        }
        began = true
        if let tokenizer { try AtomicFile.write(tokenizer, to: tokenizerPath) }
        try AtomicFile.write(config.json() + "\n", to: configPath)
        if !fm.fileExists(atPath: metricsPath) { _ = fm.createFile(atPath: metricsPath, contents: nil) }
        guard let h = FileHandle(forUpdatingAtPath: metricsPath) else { throw UserError("cannot write \(metricsPath)") }
        let data = h.readDataToEndOfFile()
        if let last = data.last, last != UInt8(ascii: "\n") {
            let keep = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
            h.truncateFile(atOffset: UInt64(keep))
        }
        h.seekToEndOfFile()
        metrics = h
    }

    /// Writes `latest.safetensors` (and `best.safetensors` when `best`); the first one ends a `--force`
    /// replacement (the old run's files are deleted).
    func saveCheckpoint(_ state: CheckpointState, model: LanguageModel, optimizer: AdamW, best: Bool) throws {
        try Checkpoint.write(state, model: model, optimizer: optimizer, to: latestCheckpoint)
        if best { try Checkpoint.write(state, model: model, optimizer: optimizer, to: bestCheckpoint) }
        if !hasCheckpoint {
            hasCheckpoint = true
            try? FileManager.default.removeItem(atPath: replacedPath)
        }
    }

    /// A new run that failed before its first checkpoint leaves things as they were: a replaced run comes back,
    /// the files this run wrote go, and so does a directory it created.
    func abandon() {
        guard !resuming, !hasCheckpoint else { return }
        try? metrics?.close()
        metrics = nil
        let fm = FileManager.default
        if fm.fileExists(atPath: replacedPath) {
            restoreReplaced()
        } else if began {
            for name in runFiles { try? fm.removeItem(atPath: path + "/" + name) }  // only this run's: none was there
        }
        let rest = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).filter { $0 != ".lock" }
        if created && rest.isEmpty { try? fm.removeItem(atPath: path) }
    }

    /// Appends one record to `metrics.jsonl` (NaN and infinities become null: JSON has none).
    func appendMetrics(_ record: [String: Any]) {
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: record.mapValues(Self.finite), options: [.sortedKeys])
        else { return }
        metrics?.write(data + Data("\n".utf8))
    }

    static func finite(_ v: Any) -> Any {
        if let d = v as? Double, !d.isFinite { return NSNull() }
        if let a = v as? [Double] { return a.map { $0.isFinite ? $0 as Any : NSNull() } }
        return v
    }
}

/// The trainer's own checkpoint metadata (carried in `CheckpointState.extra`).
enum TrainingMetadata {
    static let configKey = "ngpt.config"

    static func extra(_ config: TrainConfig, step: Int) -> [String: String] {
        [
            configKey: config.json(),
            "ngpt.rng":
                "{\"generator\": \"splitmix64\", \"seed\": \(config.schedule.seed), \"next_micro_step\": "
                + "\(step * config.globalMicroBatches)}",
            "ngpt.sampler":
                "{\"seed\": \(config.schedule.seed), \"next_step\": \(step), \"batch\": "
                + "\(config.schedule.batchSize), \"context\": \(config.model.context), \"grad_accum\": "
                + "\(config.schedule.gradAccum), \"processes\": \(config.processes)}",
        ]
    }
}
