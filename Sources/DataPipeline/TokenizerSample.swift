import Common
import Dispatch
import Foundation
import Kernels
import Tokenizer

extension DataPreparation {
    // MARK: tokenizer

    /// Trains on `sampleBytes` of the corpus's lines: windows of a chunk at evenly spaced offsets after the head that
    /// validation is taken from, so that the tokenizer's cost does not grow with the corpus and it does not see
    /// validation text (unless validation is larger than the skipped head; the summary would not tell).
    static func trainTokenizer(
        root: String, sources: [CorpusSource], options: DataOptions,
        log: PrepareLog
    ) throws -> (any TextTokenizer, Int) {
        let total = sources.reduce(0) { $0 + $1.estimatedTextBytes }
        let head = min(
            total / 2,
            options.validationTokens.map { $0 * 8 }
                ?? min(Int(Double(total) * defaultValidationFraction * 1.2), defaultValidationCap * 8))
        let budget = options.tokenizer.sampleBytes
        let started = DispatchTime.now().uptimeNanoseconds
        let sample = try TokenizerSample.read(
            root: root, sources: sources, from: head, bytes: budget, textField: options.textField
        ) { read in
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            log.progress(
                String(
                    format: "reading the tokenizer's sample: %@ of %@, %.0f MB/s", formatBytes(read),
                    formatBytes(min(budget, total - head)),
                    Double(read) / 1e6 / max(seconds, 1e-9)))
        }
        guard sample.contains(where: { !$0.isWhitespace }) else {
            throw UserError(
                "corpus \(options.corpus ?? root) holds no text to train a tokenizer on (its files are empty, or "
                    + "every line was invalid UTF-8)"
            )
        }
        log.line(
            "training a \(options.tokenizer.modelType.rawValue) tokenizer, vocab \(options.tokenizer.vocabSize), on "
                + "\(formatBytes(sample.utf8.count)) sampled from \(formatBytes(total))…"
        )
        let ticker = Ticker(every: 1) { seconds in
            log.progress("training the tokenizer: \(formatDuration(seconds)) (SentencePiece reports no progress)")
        }
        defer { ticker.stop() }
        let lines = sample.split(separator: "\n")
        let model = try SentencePieceModel.train(sentences: lines, options: options.tokenizer)
        ticker.stop()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        log.line(String(format: "tokenizer trained in %@ (%d sentences)", formatDuration(seconds), lines.count))
        return (model, sample.utf8.count)
    }
}

/// The tokenizer's training text: lines from windows at evenly spaced offsets of the corpus.
enum TokenizerSample {
    static func read(
        root: String, sources: [CorpusSource], from head: Int, bytes budget: Int, textField: String,
        progress: (Int) -> Void
    ) throws -> String {
        let total = sources.reduce(0) { $0 + $1.estimatedTextBytes }
        let chunk = DataPreparation.chunkBytes
        let span = max(0, total - head)
        // A corpus that fits the budget is read whole (one window); a larger one in chunk-sized windows spread evenly.
        let whole = span <= budget
        let windows = whole ? 1 : max(1, budget / chunk)
        let stride = whole ? span : max(chunk, span / windows)
        var starts: [Int] = []  // cumulative source offsets
        var sum = 0
        for s in sources { starts.append(sum); sum += s.estimatedTextBytes }
        let field = Array(textField.utf8)
        var text: [UInt8] = []
        text.reserveCapacity(min(budget, span) + chunk)
        var reader: SourceReader?, readerSource = -1
        for w in 0..<windows where text.count < budget {
            var at = head + w * stride
            var want = whole ? span : min(chunk, budget - text.count)
            var source = max(0, (starts.lastIndex { $0 <= at }) ?? 0)
            while want > 0 && source < sources.count {
                let local = at - starts[source]
                if readerSource != source || reader == nil || reader!.offset > local {
                    // (a gzip file is decompressed once from its start: windows only move forward)
                    reader = try SourceReader(path: root + "/" + sources[source].name, gzip: sources[source].gzip)
                    readerSource = source
                }
                try reader!.skip(local - reader!.offset)
                let chunker = LineChunker(reader: reader!, chunkBytes: min(want, chunk))
                var partialFirstLine = local > 0
                while want > 0 {
                    let at = chunker.offset
                    guard let bytes = try chunker.next() else { break }
                    var piece = bytes[...]
                    if partialFirstLine, let nl = piece.firstIndex(of: 0x0A) { piece = piece[(nl + 1)...] }
                    partialFirstLine = false
                    let task = ChunkTask(
                        source: source, offset: at + (bytes.count - piece.count), line: 0, lines: 0,
                        bytes: Array(piece), first: at == 0)
                    for p in try ChunkText(
                        task, format: sources[source].format, textField: field, path: root + "/" + sources[source].name
                    ).pieces {
                        text += p.text
                        text.append(0x0A)  // a record's last line, ended (the sentences are the non-empty lines)
                    }
                    want -= bytes.count
                }
                source += 1
                at = starts[min(source, sources.count - 1)]
            }
            progress(text.count)
        }
        return String(decoding: text, as: UTF8.self)
    }
}
