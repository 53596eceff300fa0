import Foundation
import Kernels
import NGPT
import Tokenizer

/// A model and its tokenizer, loaded from a run directory or a checkpoint file (what ngpt-sample and
/// ngpt-inspect read; the trainer's configuration in the checkpoint is not needed for this).
public struct LoadedModel {
    public let model: LanguageModel
    public let tokenizer: SentencePieceModel
    public let checkpointPath: String
    public let tokenizerPath: String
    public let step: Int
    /// Set when the tokenizer's hash differs from the one recorded in the checkpoint (same vocab size).
    public let tokenizerWarning: String?

    /// `path` is a run directory (its best checkpoint by validation loss, else its latest) or a .safetensors file.
    /// The tokenizer is `tokenizerPath`, or the `tokenizer.model` beside the checkpoint.
    public static func load(checkpoint path: String, tokenizer tokenizerPath: String? = nil) throws -> LoadedModel {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw UserError("checkpoint not found: \(path) (pass a run directory from ngpt-train or a .safetensors file)")
        }
        var file = path
        if isDir.boolValue {
            let best = path + "/best.safetensors", latest = path + "/latest.safetensors"
            guard let found = [best, latest].first(where: { fm.fileExists(atPath: $0) }) else {
                throw UserError("\(path) holds no best.safetensors or latest.safetensors; train first with ngpt-train --out \(path)")
            }
            file = found
        }
        let tensors: SafeTensors
        do { tensors = try SafeTensors(path: file) } catch let e as UserError {
            throw UserError("cannot read the checkpoint: \(e.message) (corrupt or truncated; try the run's other checkpoint)")
        }
        let state = try Checkpoint.read(tensors, path: file)
        let model = try makeModel(state.model)
        try Checkpoint.load(tensors, into: model, optimizer: nil, path: file)
        let tokPath = tokenizerPath ?? ((file as NSString).deletingLastPathComponent + "/tokenizer.model")
        let tokenizer: SentencePieceModel
        do { tokenizer = try SentencePieceModel(path: tokPath) } catch let e as UserError {
            throw UserError(e.message + (tokenizerPath == nil ? " (or pass --tokenizer PATH)" : ""))
        }
        guard tokenizer.vocabSize == state.model.vocabSize else {
            throw UserError("the tokenizer \(tokPath) has \(tokenizer.vocabSize) pieces but the model was trained with \(state.model.vocabSize); pass the run's own tokenizer.model")
        }
        let hash = SHA256.hex(SHA256.hash(tokenizer.modelBytes))
        let warning = state.tokenizerSHA256.isEmpty || state.tokenizerSHA256 == hash ? nil
            : "warning: \(tokPath) is not the tokenizer this model was trained with (same vocab size, different model)"
        return LoadedModel(model: model, tokenizer: tokenizer, checkpointPath: file, tokenizerPath: tokPath, step: state.step,
                           tokenizerWarning: warning)
    }
}
