import Common
import Dispatch
import Foundation
import Kernels

/// The writer's side of encoding: the validation split first, then training shards; progress saved whenever no
/// shard is open with ids in it.
final class SplitWriter {
    private(set) var state: TokenManifest
    let directory: String, progressPath: String
    let shardTokens: Int
    let estimatedTextBytes: Int
    private var validation: ShardWriter?, train: ShardWriter?
    let afterSave: ((TokenManifest) throws -> Void)?

    init(
        state: TokenManifest, directory: String, progressPath: String, shardTokens: Int, estimatedTextBytes: Int,
        afterSave: ((TokenManifest) throws -> Void)? = nil
    ) {
        self.state = state; self.directory = directory; self.progressPath = progressPath
        self.shardTokens = shardTokens; self.estimatedTextBytes = estimatedTextBytes; self.afterSave = afterSave
    }

    func consume(_ chunk: EncodedChunk, task: ChunkTask, next: TokenManifest.Position) throws {
        if state.validationTarget == 0 && !chunk.ids.isEmpty {
            // 5 % of the corpus's tokens, estimated from its size and this first chunk's bytes per token
            let estimate = Double(estimatedTextBytes) * Double(chunk.ids.count) / Double(max(1, chunk.textBytes))
            state.validationTarget =
                state.settings.validationTokens
                ?? max(
                    1,
                    min(DataPreparation.defaultValidationCap, Int(estimate * DataPreparation.defaultValidationFraction))
                )
        }
        var ids = chunk.ids[...]
        let held = state.validationTokens + (validation?.count ?? 0)
        if held < state.validationTarget && !ids.isEmpty {
            let need = state.validationTarget - held
            let cut = ids.count <= need ? ids.count : (chunk.cuts.first { $0 >= need } ?? ids.count)
            if validation == nil { validation = try open("val", index: state.validation.count) }
            try validation!.append(ids[..<cut])
            ids = ids[cut...]
            if held + cut >= state.validationTarget || validation!.count >= shardTokens {
                state.validation.append(try validation!.finish())
                validation = nil
            }
        }
        if !ids.isEmpty {
            if train == nil { train = try open("train", index: state.train.count) }
            try train!.append(ids)
            if train!.count >= shardTokens {
                state.train.append(try train!.finish())
                train = nil
            }
        }
        state.textBytes += chunk.textBytes
        state.documents += chunk.documents
        state.skipped += chunk.skipped
        if state.firstSkipped == nil { state.firstSkipped = chunk.firstSkipped }
        state.position = next
        if validation == nil && train == nil {
            try state.write(to: progressPath)
            try afterSave?(state)
        }
    }

    /// Closes the open shards where they are (a stop: the shards then end there rather than at the shard size) and
    /// saves the progress, so that the next run continues exactly after the last chunk written.
    func saveNow() throws {
        if let v = validation { if v.count > 0 { state.validation.append(try v.finish()) } else { v.discard() } }
        if let t = train { if t.count > 0 { state.train.append(try t.finish()) } else { t.discard() } }
        validation = nil; train = nil
        try state.write(to: progressPath)
    }

    func finishAll(next: TokenManifest.Position) throws {
        if let v = validation, v.count > 0 { state.validation.append(try v.finish()) }
        if let t = train, t.count > 0 { state.train.append(try t.finish()) }
        validation = nil; train = nil
        state.position = next
    }

    func discardOpen() {
        validation?.discard(); train?.discard()
        validation = nil; train = nil
    }

    private func open(_ split: String, index: Int) throws -> ShardWriter {
        try ShardWriter(
            path: directory + "/\(split)-\(state.build)-\(String(index).leftPadded(to: 5, with: "0")).bin",
            vocabSize: state.vocabSize)
    }
}
