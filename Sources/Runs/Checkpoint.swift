import Common
import Foundation
import Kernels
import NGPT
import Tokenizer

/// What a checkpoint records besides its tensors. Loading a model needs only `model`; the rest describes the
/// run, and `extra` carries the writer's own metadata verbatim (the trainer's configuration and data-stream
/// state), which no reader of the model needs.
public struct CheckpointState: Equatable, Sendable {
    public var model: ModelConfig
    /// Optimiser steps completed and tokens trained on.
    public var step: Int = 0, tokens: Int = 0
    public var bestValLoss: Double = .infinity, valLoss: Double = .nan
    /// Training time so far (evaluation excluded).
    public var wallSeconds: Double = 0
    public var tokenizerSHA256 = "", dataSHA256 = ""
    /// Metadata keys of the writer's own (`ngpt.*`), kept as written.
    public var extra: [String: String] = [:]

    public init(
        model: ModelConfig, step: Int = 0, tokens: Int = 0, bestValLoss: Double = .infinity, valLoss: Double = .nan,
        wallSeconds: Double = 0, tokenizerSHA256: String = "", dataSHA256: String = "", extra: [String: String] = [:]
    ) {
        self.model = model; self.step = step; self.tokens = tokens; self.bestValLoss = bestValLoss
        self.valLoss = valLoss
        self.wallSeconds = wallSeconds; self.tokenizerSHA256 = tokenizerSHA256; self.dataSHA256 = dataSHA256
        self.extra = extra
    }
}

/// A checkpoint: one safetensors file holding the weights under their model names (`ParameterLayout`), with a
/// training checkpoint also both Adam moments as `opt.m.<name>` and `opt.v.<name>`. `__metadata__` (strings):
/// `format` ("pt"), `ngpt.version`, `ngpt.model` (ModelConfig JSON: what loading needs), `ngpt.step`,
/// `ngpt.tokens`, `ngpt.best_val_loss`, `ngpt.val_loss`, `ngpt.wall_seconds`, `ngpt.tokenizer_sha256`,
/// `ngpt.tokenizer_path` (relative to the run directory), `ngpt.data_sha256` (the training token cache's source
/// hash), `ngpt.adam_step` (optimiser steps the moments have seen; 0 without them), and the writer's `extra`
/// keys — the trainer's are `ngpt.config` (its configuration JSON), `ngpt.rng` and `ngpt.sampler` (the data
/// stream: batches are a pure function of seed and micro-step, so its state is the seed and the next micro-step).
public enum Checkpoint {
    public static let version = "1"

    /// Writes weights (and the optimiser's moments when given) atomically: temp file, fsync, rename.
    public static func write(_ state: CheckpointState, model: LanguageModel, optimizer: AdamW?, to path: String) throws
    {
        var tensors: [SafeTensors.Tensor] = []
        for t in model.layout.tensors {
            tensors.append(
                .init(
                    name: t.name, shape: t.shape,
                    floats: UnsafeBufferPointer(start: model.params.pointer + t.offset, count: t.count)))
            if let opt = optimizer {
                tensors.append(
                    .init(
                        name: "opt.m." + t.name, shape: t.shape,
                        floats: UnsafeBufferPointer(start: opt.m.pointer + t.offset, count: t.count)))
                tensors.append(
                    .init(
                        name: "opt.v." + t.name, shape: t.shape,
                        floats: UnsafeBufferPointer(start: opt.v.pointer + t.offset, count: t.count)))
            }
        }
        let modelJSON = (try? JSONEncoder().encode(state.model)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        var meta = state.extra
        for (key, value) in [
            ("format", "pt"), ("ngpt.version", version), ("ngpt.model", modelJSON), ("ngpt.step", "\(state.step)"),
            ("ngpt.tokens", "\(state.tokens)"), ("ngpt.best_val_loss", "\(state.bestValLoss)"),
            ("ngpt.val_loss", "\(state.valLoss)"),
            ("ngpt.wall_seconds", "\(state.wallSeconds)"), ("ngpt.tokenizer_sha256", state.tokenizerSHA256),
            ("ngpt.tokenizer_path", "tokenizer.model"), ("ngpt.data_sha256", state.dataSHA256),
            ("ngpt.adam_step", "\(optimizer?.step ?? 0)"),
        ] { meta[key] = value }
        try AtomicFile.write(SafeTensors.serialize(tensors, metadata: meta), to: path)
    }

    /// The keys `write` sets itself; every other metadata key is the writer's `extra`.
    static let standardKeys: Set<String> = [
        "format", "ngpt.version", "ngpt.model", "ngpt.step", "ngpt.tokens", "ngpt.best_val_loss",
        "ngpt.val_loss", "ngpt.wall_seconds", "ngpt.tokenizer_sha256", "ngpt.tokenizer_path",
        "ngpt.data_sha256", "ngpt.adam_step",
    ]

    /// Reads a checkpoint's metadata and checks, before anything is built from it, that it is an ngpt
    /// checkpoint of a valid model: the sizes in `ngpt.model` pass `ModelConfig.validate` (bounded, divisible,
    /// products that cannot overflow) and every tensor the model needs (with both Adam moments when `moments`)
    /// is there, F32, of the layout's shape. A model then built from `model` allocates no more than the file
    /// holds, plus activations the memory check bounds. Every refusal names `path`.
    public static func read(_ file: SafeTensors, path: String, moments: Bool = false) throws -> CheckpointState {
        let m = file.metadata
        func need(_ key: String) throws -> String {
            guard let v = m[key] else {
                throw UserError("\(path) is not an ngpt checkpoint (no \(key) in its metadata)")
            }
            return v
        }
        let model: ModelConfig
        do { model = try JSONDecoder().decode(ModelConfig.self, from: Data(try need("ngpt.model").utf8)) } catch let e
            as UserError
        {
            throw e
        } catch {
            throw UserError(
                "\(path) has an unreadable model configuration in its metadata (ngpt.model is not the JSON of a "
                    + "model's sizes); the file is damaged or not from ngpt"
            )
        }
        do { try model.validate(naming: .keys) } catch let e as UserError {
            throw UserError(
                "\(path) has an invalid model configuration in its metadata: \(e.message); the file is damaged or "
                    + "not from ngpt"
            )
        }
        guard let step = Int(try need("ngpt.step")), let tokens = Int(try need("ngpt.tokens")), step >= 0, tokens >= 0
        else {
            throw UserError("\(path) has a corrupt step or token count in its metadata")
        }
        try checkTensors(file, layout: ParameterLayout(config: model), moments: moments, path: path)
        if moments {
            guard let s = m["ngpt.adam_step"].flatMap(Int.init), s >= 0 else {
                throw UserError("\(path) has no valid optimiser step count (ngpt.adam_step) in its metadata")
            }
        }
        return CheckpointState(
            model: model, step: step, tokens: tokens, bestValLoss: Double(m["ngpt.best_val_loss"] ?? "") ?? .infinity,
            valLoss: Double(m["ngpt.val_loss"] ?? "") ?? .nan, wallSeconds: Double(m["ngpt.wall_seconds"] ?? "") ?? 0,
            tokenizerSHA256: m["ngpt.tokenizer_sha256"] ?? "", dataSHA256: m["ngpt.data_sha256"] ?? "",
            extra: m.filter { !standardKeys.contains($0.key) })
    }

    /// Every tensor of `layout` (and its `opt.m.`/`opt.v.` moments when `moments`) is in the file as F32 of its
    /// shape; checked on the header alone, before a model is allocated or a byte copied.
    static func checkTensors(_ file: SafeTensors, layout: ParameterLayout, moments: Bool, path: String) throws {
        for t in layout.tensors {
            for name in moments ? [t.name, "opt.m." + t.name, "opt.v." + t.name] : [t.name] {
                guard let e = file.entries[name] else {
                    throw UserError("\(path) lacks tensor \(name) (incomplete or from another model)")
                }
                guard e.shape == t.shape, e.dtype == "F32" else {
                    throw UserError("\(path): tensor \(name) is \(e.dtype) \(e.shape), the model needs F32 \(t.shape)")
                }
            }
        }
    }

    /// The checkpoint a reader takes from `path`: the file itself, or in a run directory its best checkpoint by
    /// validation loss, else its latest. While a `--force` run has moved the previous run's files aside and not
    /// yet written its own first checkpoint, they wait in `DIR/.replaced/` with their tokenizer, and readers take
    /// them from there: a run directory is never without a readable checkpoint. Nil when there is none.
    public static func locate(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return nil }
        guard isDirectory.boolValue else { return path }
        let candidates = [path, path + "/" + replacedDirectory].flatMap {
            [$0 + "/best.safetensors", $0 + "/latest.safetensors"]
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Where a `--force` run keeps the run it replaces until its own first checkpoint.
    public static let replacedDirectory = ".replaced"

    /// Reads the checkpoint at `path` (a file or a run directory, see `locate`) with `body`. A reader that races a
    /// `--force` run's first checkpoint may find the file it chose gone (the old run is deleted right after):
    /// then it looks again, and takes the new run's checkpoint.
    public static func reading<T>(_ path: String, missing: @autoclosure () -> UserError, _ body: (String) throws -> T)
        throws -> T
    {
        var attempt = 0
        while true {
            guard let file = locate(path) else { throw missing() }
            do { return try body(file) } catch {
                attempt += 1
                if attempt >= 3 || FileManager.default.fileExists(atPath: file) { throw error }
            }
        }
    }

    /// Loads weights (and moments when `optimizer` is given) into a model of the checkpoint's architecture,
    /// refusing a tensor with a NaN or an infinity (naming it).
    public static func load(_ file: SafeTensors, into model: LanguageModel, optimizer: AdamW?, path: String) throws {
        // presence, dtype and shapes: the one check `read` makes too
        try checkTensors(file, layout: model.layout, moments: optimizer != nil, path: path)
        func copy(_ name: String, into p: UnsafeMutablePointer<Float>, _ t: TensorSpec) throws {
            let values = try file.floats(name)
            if let i = values.firstIndex(where: { !$0.isFinite }) {
                throw UserError(
                    "\(path): tensor \(name) holds a non-finite value (\(values[i]) at index \(i)); the checkpoint "
                        + "is unusable, try the run's other checkpoint"
                )
            }
            p.update(from: values, count: t.count)
        }
        for t in model.layout.tensors {
            try copy(t.name, into: model.params.pointer + t.offset, t)
            if let opt = optimizer {
                try copy("opt.m." + t.name, into: opt.m.pointer + t.offset, t)
                try copy("opt.v." + t.name, into: opt.v.pointer + t.offset, t)
            }
        }
        if let opt = optimizer {
            guard let s = file.metadata["ngpt.adam_step"].flatMap(Int.init) else {
                throw UserError("\(path) has no optimiser step count")
            }
            opt.step = s
        }
    }
}
