import Common
import Foundation
import Kernels
import NGPT
import Tokenizer

/// A model and its tokenizer, loaded from a run directory or a checkpoint file (what ngpt-sample and
/// ngpt-inspect read; the trainer's configuration in the checkpoint is not needed for this).
public struct LoadedModel {
    public let model: LanguageModel
    public let tokenizer: any TextTokenizer
    public let checkpointPath: String
    public let tokenizerPath: String
    public let step: Int
    /// The checkpoint's state (step, tokens, losses) and its `__metadata__` (the run's `ngpt.config` among them).
    public let state: CheckpointState
    public let metadata: [String: String]
    /// Set when the tokenizer's hash differs from the one recorded in the checkpoint (same vocab size).
    public let tokenizerWarning: String?

    /// `path` is a run directory (its best checkpoint by validation loss, else its latest) or a .safetensors file.
    /// The tokenizer is `tokenizerPath`, or the `tokenizer.model` beside the checkpoint.
    /// `tokenizerFlag` is the flag that names another tokenizer in the calling tool, if it has one (for messages).
    public static func load(
        checkpoint path: String, tokenizer tokenizerPath: String? = nil, tokenizerFlag: String? = nil
    ) throws -> LoadedModel {
        guard FileManager.default.fileExists(atPath: path) else {
            throw UserError(
                "checkpoint not found: \(path) (pass a run directory from ngpt-train or a .safetensors file)")
        }
        if HuggingFaceFormat.isDirectory(path) {
            let (file, tokenizer) = try HuggingFaceFormat.read(path)
            return try load(
                file, path: path, tokenizer: tokenizerPath ?? tokenizer, tokenizerFlag: tokenizerFlag)
        }
        let missing = UserError(
            "\(path) holds no best.safetensors or latest.safetensors; train first with ngpt-train --out \(path)")
        return try Checkpoint.reading(path, missing: missing) { file in
            try load(file: file, tokenizer: tokenizerPath, tokenizerFlag: tokenizerFlag)
        }
    }

    static func load(file: String, tokenizer tokenizerPath: String?, tokenizerFlag: String?) throws -> LoadedModel {
        let tensors: SafeTensors
        do { tensors = try SafeTensors(path: file) } catch let e as UserError {
            throw UserError(
                "cannot load the checkpoint: \(e.message) (corrupt or truncated; try the run's other checkpoint)")
        }
        return try load(tensors, path: file, tokenizer: tokenizerPath, tokenizerFlag: tokenizerFlag)
    }

    /// A model from checkpoint tensors read from `file` (a checkpoint file, or a Hugging Face directory converted);
    /// the tokenizer is `tokenizerPath`, else the one beside `file`.
    static func load(
        _ tensors: SafeTensors, path file: String, tokenizer tokenizerPath: String?, tokenizerFlag: String?
    )
        throws -> LoadedModel
    {
        let state = try Checkpoint.read(tensors, path: file)
        let model: LanguageModel
        do { model = try makeModel(state.model) } catch let e as UserError { throw UserError("\(file): \(e.message)") }
        try Checkpoint.load(tensors, into: model, optimizer: nil, path: file)
        let tokPath = tokenizerPath ?? ((file as NSString).deletingLastPathComponent + "/tokenizer.model")
        let tokenizer: any TextTokenizer
        do { tokenizer = try SentencePieceModel(path: tokPath) } catch let e as UserError {
            throw UserError(
                e.message + (tokenizerPath == nil ? tokenizerFlag.map { " (or pass \($0) PATH)" } ?? "" : ""))
        }
        guard tokenizer.vocabSize == state.model.vocabSize else {
            throw UserError(
                "the tokenizer \(tokPath) has \(tokenizer.vocabSize) pieces but the model was trained with "
                    + "\(state.model.vocabSize); pass the run's own tokenizer.model"
            )
        }
        let hash = SHA256.hex(SHA256.hash(tokenizer.modelBytes))
        let warning =
            state.tokenizerSHA256.isEmpty || state.tokenizerSHA256 == hash
            ? nil
            : "warning: \(tokPath) is not the tokenizer this model was trained with (same vocab size, different model)"
        return LoadedModel(
            model: model, tokenizer: tokenizer, checkpointPath: file, tokenizerPath: tokPath, step: state.step,
            state: state, metadata: tensors.metadata, tokenizerWarning: warning)
    }
}
