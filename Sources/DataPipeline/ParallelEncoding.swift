import Common
import Dispatch
import Foundation
import Kernels
import Tokenizer

extension DataPreparation {
    // MARK: encoding

    /// Encodes the writer's remaining plan: chunks read in order, encoded `inFlight` at a time on the thread
    /// budget's workers (taking the next chunk as each finishes), handed to the writer in order.
    static func encode(
        root: String, writer: SplitWriter, tokenizer: any TextTokenizer, textField: String,
        log: PrepareLog
    ) throws -> (sources: Int, bytes: Int) {
        let encoder = try ChunkEncoder(tokenizer: tokenizer, textField: textField)
        let sources = writer.state.sources
        guard let start = writer.state.position else { return (0, 0) }
        let stream = ChunkStream(root: root, sources: sources, from: start, chunkBytes: chunkBytes)
        let totalBytes = sources[start.source...].reduce(0) { $0 + $1.estimatedTextBytes } - start.offset
        let started = DispatchTime.now().uptimeNanoseconds
        var done = 0, tokens = 0
        var lastReport = started
        let inFlight = 4 * Threads.count
        do {
            while true {
                var tasks: [ChunkTask] = []
                while tasks.count < inFlight, let task = try stream.next() { tasks.append(task) }
                if tasks.isEmpty { break }
                if let signal = log.stopRequested() {
                    try writer.saveNow()
                    throw UserError(
                        "\(signal): data preparation stopped after \(formatBytes(done)); run the same command again "
                            + "to continue where it stopped"
                    )
                }
                let results = encodeConcurrently(tasks) { task in
                    try encoder.encode(task, source: sources[task.source], path: root + "/" + sources[task.source].name)
                }
                for (task, result) in zip(tasks, results) {
                    let chunk = try result.get()
                    try writer.consume(chunk, task: task, next: stream.position(after: task))
                    done += task.bytes.count
                    tokens += chunk.ids.count
                }
                let now = DispatchTime.now().uptimeNanoseconds
                if now - lastReport > 500_000_000 {
                    lastReport = now
                    let seconds = Double(now - started) / 1e9
                    let rate = Double(done) / seconds
                    let eta = rate > 0 ? Double(max(0, totalBytes - done)) / rate : .infinity
                    log.progress(
                        String(
                            format: "encoding: %@ of %@ (%.0f %%), %.1f MB/s, %@ tokens/s, ETA %@", formatBytes(done),
                            formatBytes(totalBytes),
                            100 * Double(done) / Double(max(totalBytes, 1)), rate / 1e6,
                            formatCount(Double(tokens) / seconds), formatDuration(eta)))
                }
            }
            try writer.finishAll(next: TokenManifest.Position(source: sources.count, offset: 0, line: 1))
        } catch {
            writer.discardOpen()
            throw error
        }
        return (sources.count - start.source, done)
    }

    /// Runs `body` on each task over the thread budget's workers, each taking the next task as it finishes; results in
    /// order.
    static func encodeConcurrently(_ tasks: [ChunkTask], _ body: @escaping (ChunkTask) throws -> EncodedChunk)
        -> [Result<EncodedChunk, Error>]
    {
        var results = [Result<EncodedChunk, Error>?](repeating: nil, count: tasks.count)
        let lock = NSLock()
        var next = 0
        results.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let slots = out
            Threads.parallelFor(min(Threads.count, tasks.count), workPerItem: Threads.minParallelWork) { _, range in
                for _ in range {
                    while true {
                        lock.lock()
                        let i = next
                        next += 1
                        lock.unlock()
                        guard i < tasks.count else { break }
                        slots[i] = Result { try body(tasks[i]) }
                    }
                }
            }
        }
        return results.map { $0! }
    }
}

/// The chunks of a list of sources in order, from a position.
final class ChunkStream {
    let root: String
    let sources: [CorpusSource]
    let chunkBytes: Int
    private var index: Int, line: Int
    /// Bytes of the first source already encoded (a continued preparation).
    private var skip: Int
    private var chunker: LineChunker?

    init(root: String, sources: [CorpusSource], from position: TokenManifest.Position, chunkBytes: Int) {
        self.root = root; self.sources = sources; self.chunkBytes = chunkBytes
        index = position.source; line = position.line; skip = position.offset
    }

    func next() throws -> ChunkTask? {
        while index < sources.count {
            if chunker == nil {
                let reader = try SourceReader(path: root + "/" + sources[index].name, gzip: sources[index].gzip)
                try reader.skip(skip)
                skip = 0
                chunker = LineChunker(reader: reader, chunkBytes: chunkBytes)
            }
            let offset = chunker!.offset
            if let bytes = try chunker!.next() {
                let lines = bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                defer { line += lines }
                return ChunkTask(
                    source: index, offset: offset, line: line, lines: lines, bytes: bytes, first: offset == 0)
            }
            chunker = nil
            index += 1
            line = 1
        }
        return nil
    }

    /// Where encoding continues once `task` is written: the next chunk of its source.
    func position(after task: ChunkTask) -> TokenManifest.Position {
        TokenManifest.Position(
            source: task.source, offset: task.offset + task.bytes.count, line: task.line + task.lines)
    }
}
