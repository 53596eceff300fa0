import Common
import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// The run a fine-tuning run starts from (`--init-from`): a run directory (its best checkpoint, else its latest) or
/// a .safetensors checkpoint, with the tokenizer.model beside it, or a Hugging Face directory (design §8). Its
/// weights initialise the new model; its architecture and tokenizer are the new run's; its optimiser state and
/// schedule are not carried over.
public struct BaseRun: @unchecked Sendable {
    public let path: String
    public let checkpointPath: String
    public let file: SafeTensors
    public let state: CheckpointState
    public let tokenizerPath: String
    public let tokenizerBytes: [UInt8]
    public var model: ModelConfig { state.model }

    public init(_ path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw UserError(
                "--init-from \(path): not found (pass a run directory from ngpt-train or a .safetensors checkpoint)")
        }
        if HuggingFaceFormat.isDirectory(path) {
            let (file, tokenizer) = try HuggingFaceFormat.read(path)
            self.path = path
            checkpointPath = path
            self.file = file
            state = try Checkpoint.read(file, path: path)
            tokenizerPath = tokenizer
            tokenizerBytes = try InputFile.read(
                tokenizer, what: "tokenizer model", limit: SentencePieceModel.maxModelBytes)
            return
        }
        let missing = UserError(
            "--init-from \(path) holds no best.safetensors or latest.safetensors; pass a trained run's directory")
        self = try Checkpoint.reading(path, missing: missing) { try BaseRun(path: path, checkpoint: $0) }
    }

    private init(path: String, checkpoint: String) throws {
        self.path = path
        checkpointPath = checkpoint
        do { file = try SafeTensors(path: checkpoint) } catch let e as UserError {
            throw UserError("--init-from: cannot load \(checkpoint): \(e.message)")
        }
        state = try Checkpoint.read(file, path: checkpoint)
        tokenizerPath = (checkpoint as NSString).deletingLastPathComponent + "/tokenizer.model"
        guard InputFile.isRegular(tokenizerPath) != nil else {
            throw UserError(
                "--init-from \(path): no tokenizer.model beside \(checkpoint); the base run's tokenizer is needed "
                    + "to encode the new corpus"
            )
        }
        tokenizerBytes = try InputFile.read(
            tokenizerPath, what: "tokenizer model", limit: SentencePieceModel.maxModelBytes)
        if !state.tokenizerSHA256.isEmpty, SHA256.hex(SHA256.hash(tokenizerBytes)) != state.tokenizerSHA256 {
            throw UserError(
                "--init-from \(path): \(tokenizerPath) is not the tokenizer \(checkpoint) was trained with; put the "
                    + "run's own tokenizer.model back"
            )
        }
    }

    /// Copies the base weights into `model` (of the base's architecture).
    func load(into model: LanguageModel) throws {
        try Checkpoint.load(file, into: model, optimizer: nil, path: checkpointPath)
    }
}
