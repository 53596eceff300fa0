import Foundation
import Kernels
import NGPT
import Tokenizer

/// A training checkpoint: one safetensors file holding the weights under their model names, both Adam moments as
/// `opt.m.<name>` and `opt.v.<name>`, and in `__metadata__` (strings) everything else needed to continue the run
/// bit for bit. `ngpt-sample` reads the same file (it ignores the optimiser tensors).
///
/// Metadata keys: `format` ("pt"), `ngpt.version`, `ngpt.config` (TrainConfig JSON), `ngpt.model` (ModelConfig
/// JSON), `ngpt.step` (optimiser steps completed), `ngpt.tokens` (tokens trained on), `ngpt.best_val_loss`,
/// `ngpt.val_loss`, `ngpt.rng` and `ngpt.sampler` (the data stream: batches are a pure function of seed and
/// micro-step, so its state is the seed and the next micro-step), `ngpt.tokenizer_sha256`,
/// `ngpt.tokenizer_path` (relative to the run directory), `ngpt.data_sha256` (the training token cache's source
/// hash), `ngpt.wall_seconds` (training time so far).
public struct Checkpoint {
    public static let version = "1"

    public var config: TrainConfig
    public var step: Int
    public var tokens: Int
    public var bestValLoss: Double
    public var valLoss: Double
    public var tokenizerSHA256: String
    public var dataSHA256: String
    public var wallSeconds: Double

    public init(config: TrainConfig, step: Int, tokens: Int, bestValLoss: Double, valLoss: Double, tokenizerSHA256: String,
                dataSHA256: String, wallSeconds: Double) {
        self.config = config; self.step = step; self.tokens = tokens; self.bestValLoss = bestValLoss; self.valLoss = valLoss
        self.tokenizerSHA256 = tokenizerSHA256; self.dataSHA256 = dataSHA256; self.wallSeconds = wallSeconds
    }

    var metadata: [String: String] {
        let model = (try? JSONEncoder().encode(config.modelConfig)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return [
            "format": "pt", "ngpt.version": Self.version, "ngpt.config": config.json(), "ngpt.model": model,
            "ngpt.step": "\(step)", "ngpt.tokens": "\(tokens)", "ngpt.best_val_loss": "\(bestValLoss)", "ngpt.val_loss": "\(valLoss)",
            "ngpt.rng": "{\"generator\": \"splitmix64\", \"seed\": \(config.seed), \"next_micro_step\": \(step * config.gradAccum)}",
            "ngpt.sampler": "{\"seed\": \(config.seed), \"next_step\": \(step), \"batch\": \(config.batchSize), \"context\": \(config.context), \"grad_accum\": \(config.gradAccum)}",
            "ngpt.tokenizer_sha256": tokenizerSHA256, "ngpt.tokenizer_path": "tokenizer.model", "ngpt.data_sha256": dataSHA256,
            "ngpt.wall_seconds": "\(wallSeconds)",
        ]
    }

    /// Writes weights (+ optimiser moments when given) atomically: temp file, fsync, rename.
    public func write(model: LanguageModel, optimizer: AdamW?, to path: String) throws {
        var tensors: [SafeTensors.Tensor] = []
        for t in model.layout.tensors {
            tensors.append(.init(name: t.name, shape: t.shape, floats: UnsafeBufferPointer(start: model.params.pointer + t.offset, count: t.count)))
            if let opt = optimizer {
                tensors.append(.init(name: "opt.m." + t.name, shape: t.shape, floats: UnsafeBufferPointer(start: opt.m.pointer + t.offset, count: t.count)))
                tensors.append(.init(name: "opt.v." + t.name, shape: t.shape, floats: UnsafeBufferPointer(start: opt.v.pointer + t.offset, count: t.count)))
            }
        }
        var meta = metadata
        meta["ngpt.adam_step"] = "\(optimizer?.step ?? 0)"
        try AtomicFile.write(SafeTensors.serialize(tensors, metadata: meta), to: path)
    }

    /// Reads a checkpoint's metadata and checks it is an ngpt checkpoint.
    public static func read(_ file: SafeTensors, path: String) throws -> Checkpoint {
        let m = file.metadata
        func need(_ key: String) throws -> String {
            guard let v = m[key] else { throw ConfigError("\(path) is not an ngpt checkpoint (no \(key) in its metadata)") }
            return v
        }
        let config = try TrainConfig.fromJSON(try need("ngpt.config"))
        guard let step = Int(try need("ngpt.step")), let tokens = Int(try need("ngpt.tokens")) else {
            throw ConfigError("\(path) has a corrupt step count in its metadata")
        }
        return Checkpoint(config: config, step: step, tokens: tokens, bestValLoss: Double(m["ngpt.best_val_loss"] ?? "") ?? .infinity,
                          valLoss: Double(m["ngpt.val_loss"] ?? "") ?? .nan, tokenizerSHA256: m["ngpt.tokenizer_sha256"] ?? "",
                          dataSHA256: m["ngpt.data_sha256"] ?? "", wallSeconds: Double(m["ngpt.wall_seconds"] ?? "") ?? 0)
    }

    /// Loads weights (and moments when `optimizer` is given) into a model of the checkpoint's architecture.
    public static func load(_ file: SafeTensors, into model: LanguageModel, optimizer: AdamW?, path: String) throws {
        func copy(_ name: String, into p: UnsafeMutablePointer<Float>, _ t: TensorSpec) throws {
            guard let e = file.entries[name] else { throw ConfigError("\(path) lacks tensor \(name) (incomplete or from another model)") }
            guard e.shape == t.shape, e.dtype == "F32" else {
                throw ConfigError("\(path): tensor \(name) is \(e.dtype) \(e.shape), the model needs F32 \(t.shape)")
            }
            let values = try file.floats(name)
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
            guard let s = file.metadata["ngpt.adam_step"].flatMap(Int.init) else { throw ConfigError("\(path) has no optimiser step count") }
            opt.step = s
        }
    }
}
