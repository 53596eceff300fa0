import ArgumentParser
import DataPipeline
import Foundation
import Inspect
import Kernels
import Runs
import Tokenizer
import ToolSupport

@main
struct NGPTInspect: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-inspect",
        abstract:
            "Hypersphere diagnostics of one checkpoint, or two side by side (e.g. the nGPT and GPT arms of a "
            + "comparison).",
        discussion: """
            Reports embedding geometry (row norms, pairwise cosines, Wang & Isola uniformity, exact over all rows), \
            nGPT's learned scales per layer, condition numbers of every attention (per head) and MLP matrix (LAPACK \
            dgesdd from the OpenBLAS package), and hidden-state geometry on real text (--text; default: the default \
            corpus's held-out head, its first 5 % by default, when present).
            """)

    @Argument(help: "One or two run directories or .safetensors checkpoints.") var checkpoints: [String]
    @Option(help: "Comma-separated words whose nearest neighbours in E_in to list, e.g. \"king,love,death\".")
    var neighbours: String?
    @Option(
        help:
            ArgumentHelp(
                "UTF-8 text for the hidden-state geometry. (default: the Shakespeare corpus's held-out "
                    + "head, its first 5 %, when fetched)")
    ) var text: String?
    @Option(parsing: .unconditional, help: "Tokens of --text to run through the model (whole context windows).")
    var maxTokens: Int = 4096
    @Flag(help: "Print the report as JSON instead of a table.") var json = false
    @Option(help: "Write SVG (and PNG) figures into this directory.") var plot: String?
    @Option(parsing: .unconditional, help: "Thread budget; 0 = all cores.") var threads: Int = 0

    func validate() throws {
        guard (1...2).contains(checkpoints.count) else {
            throw ValidationError("give one or two checkpoints, got \(checkpoints.count)")
        }
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
    }

    func run() throws {
        Threads.configure(threads: threads)
        let words =
            neighbours.map {
                $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            } ?? []
        let textBody = try text.map { try Corpus.readText($0) } ?? defaultText()
        var reports: [InspectionReport] = []
        for path in checkpoints {
            let loaded = try LoadedModel.load(checkpoint: path)
            reports.append(try Inspector.inspect(loaded, neighbours: words, text: textBody, maxTokens: maxTokens))
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(
                positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            print(
                String(
                    decoding: try encoder.encode(reports.count == 1 ? AnyEncodable(reports[0]) : AnyEncodable(reports)),
                    as: UTF8.self))
        } else {
            print(InspectionOutput.text(reports), terminator: "")
        }
        if let dir = plot {
            let files = try InspectionOutput.plots(reports, directory: dir)
            printError("figures: \(files.joined(separator: ", "))")
        }
    }

    /// The held-out head of the default corpus, when it has been fetched: its first 5 % (the plays in file order),
    /// where the default validation split comes from.
    func defaultText() -> String? {
        let dir = "corpora/shakespeare/data/texts"
        guard
            let files = try? FileManager.default.contentsOfDirectory(atPath: dir).filter({ $0.hasSuffix(".txt") })
                .sorted()
        else { return nil }
        let texts = files.compactMap { try? Corpus.readText(dir + "/" + $0) }
        let budget = Int(DataPreparation.defaultValidationFraction * Double(texts.reduce(0) { $0 + $1.utf8.count }))
        var head = "", taken = 0
        for text in texts where taken < budget {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            for line in lines where taken < budget {
                head += line + "\n"
                taken += line.utf8.count + 1
            }
        }
        return head.isEmpty ? nil : head
    }
}

struct AnyEncodable: Encodable {
    let value: Encodable
    init(_ value: Encodable) { self.value = value }
    func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }
}
