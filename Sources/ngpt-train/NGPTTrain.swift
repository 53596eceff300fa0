import ArgumentParser
import Common
import DataPipeline
import Foundation
import Kernels
import Tokenizer
import ToolSupport
import Training

@main
struct NGPTTrain: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-train",
        abstract: "Train nGPT and baseline GPT language models on a CPU.",
        discussion:
            "With no arguments: fetch and prepare the default corpus (Shakespeare), then train an nGPT of config S "
            + "(d 256, 4 layers, 4 heads, SwiGLU 683, context 256, vocab 4096) for 600 steps (about 5 minutes on 2 "
            + "cores with AVX512_BF16, 8 without) "
            + "into checkpoints/ngpt-<date>T<time>/. Sample from it with ngpt-sample --checkpoint DIR. Every flag: "
            + "ngpt-train train --help.",
        subcommands: [Train.self, Prepare.self],
        defaultSubcommand: Train.self)
}

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch or load the corpus, train or load the tokenizer, and build the token caches.",
        usage: "ngpt-train prepare [--<key> <value> ...]",
        discussion:
            "Training runs do this automatically on first use; `prepare` does it alone and prints what it found. "
            + "Corpora stream in 1 MiB chunks (memory does not grow with the corpus); an interrupted preparation "
            + "continues "
            + "where it stopped when run again, and files added to a corpus directory later are encoded alone. "
            + "The flags are ngpt-train's, with the same defaults:\n\n"
            + TrainingKey.helpText(keys: TrainingKey.preparation))

    @Argument(
        parsing: .allUnrecognized,
        help: ArgumentHelp("Data flags: --<key> <value> for any key listed below.", valueName: "data-flags"))
    var dataFlags: [String] = []

    func run() throws {
        let config = try TrainConfig(
            flags: dataFlags, keys: TrainingKey.preparation, listing: "ngpt-train prepare --help lists its flags")
        Threads.configure(threads: config.output.threads)
        printError(Threads.startupLine)
        let printer = ProgressPrinter(output: .standardError)
        let periodic = Throttle(seconds: 30)
        let stop = StopRequest(
            action: "stopping after this batch of chunks; the next run continues from the last saved point")
        stop.install()
        let log = PrepareLog(
            line: { printer.line($0) }, progress: { printer.progress($0, periodic: periodic.due()) },
            stopRequested: { stop.requested })
        let prepared: PreparedData
        do {
            defer { printer.finish() };
            prepared = try DataPreparation.prepare(config.dataOptions, context: config.model.context, log: log)
        }
        let s = prepared.stats
        let encoded =
            s.sourcesEncoded == 0
            ? "reused"
            : String(
                format: "%d of %d files encoded now, %@ in %@: %.1f MB/s on %d thread%@",
                s.sourcesEncoded, s.sources, formatBytes(s.bytesEncoded), formatDuration(s.encodeSeconds),
                Double(s.bytesEncoded) / 1e6 / max(s.encodeSeconds, 1e-9), Threads.count, Threads.count == 1 ? "" : "s")
        var rows: [(String, String)] = [
            (
                "corpus",
                "\(prepared.corpusPath) (\(s.sources) file\(s.sources == 1 ? "" : "s"), \(s.documents) documents, "
                    + "\(formatBytes(s.textBytes)) of text)"
            ),
            (
                "tokens (train / val)",
                "\(s.trainTokens) / \(s.validationTokens) in \(s.trainShards) + \(s.validationShards) "
                    + "shard\(s.trainShards + s.validationShards == 1 ? "" : "s")"
            ),
            ("bytes per token", String(format: "%.3f", s.bytesPerToken)),
            ("vocab size", "\(s.vocabSize)"),
            (
                "tokenizer",
                prepared.tokenizerPath
                    + (s.tokenizerTrained ? " (trained now on \(formatBytes(s.tokenizerSampleBytes)))" : " (reused)")
            ),
            ("token cache", prepared.cacheDirectory + " (\(encoded))"),
            ("time", String(format: "%.2f s", s.seconds)),
        ]
        if s.skipped > 0 {
            rows.insert(
                ("skipped", "\(s.skipped) lines or records of invalid UTF-8 (the first: \(s.firstSkipped ?? "?"))"),
                at: 1)
        }
        let width = rows.map(\.0.count).max() ?? 0
        for (k, v) in rows { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
    }
}
