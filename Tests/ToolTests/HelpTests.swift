import Common
import Foundation
import Kernels
import NGPT
import TestSupport
import Testing
import Training

/// Every executable's `--help`, compared with the snapshot in Snapshots/ (80 columns). A change to a flag or its
/// help shows up here as a diff to review; `NGPT_UPDATE_SNAPSHOTS=1 swift test -c release --filter HelpTests`
/// rewrites the snapshots.
@Suite struct HelpTests {
    static let snapshots = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Snapshots"
    ).path
    static let commands: [[String]] = [
        ["ngpt-train"], ["ngpt-train", "train"], ["ngpt-train", "prepare"], ["ngpt-sample"], ["ngpt-compare"],
        ["ngpt-inspect"], ["ngpt-plot"], ["ngpt-export"], ["ngpt-serve"],
        ["ngpt-bench"], ["ngpt-bench", "kernels"], ["ngpt-bench", "train"], ["ngpt-bench", "sample"],
    ]

    @Test(arguments: commands)
    func helpMatchesTheSnapshot(command: [String]) throws {
        let (status, out, err) = try runProcess(
            ["COLUMNS=80", productsDirectory() + "/" + command[0]] + command.dropFirst() + ["--help"])
        #expect(status == 0, "\(err)")
        let path = Self.snapshots + "/" + command.joined(separator: "-") + ".txt"
        if ProcessInfo.processInfo.environment["NGPT_UPDATE_SNAPSHOTS"] == "1" {
            try out.write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOfFile: path, encoding: .utf8)
        #expect(
            out == expected,
            "\(command.joined(separator: " ")) --help differs from \(path); rerun with NGPT_UPDATE_SNAPSHOTS=1"
        )
    }

    /// The help is derived from the key table: every key is listed with its default.
    @Test func trainHelpListsEveryKeyWithItsDefault() throws {
        let (_, help, _) = try runProcess(["COLUMNS=200", productsDirectory() + "/ngpt-train", "train", "--help"])
        let out = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")  // help wraps long lines
        for key in TrainingKey.all {
            #expect(out.contains("--\(key.name) <"), "--\(key.name) missing from the help")
            #expect(out.contains("(default: \(key.defaultText))"), "default of --\(key.name) missing")
        }
        #expect(
            out.contains(
                "(default: \(NGPTModel.nuRecipe.learningRateRule) for ngpt (νGPT), "
                    + "\(NGPTModel.recipe.learningRateRule) for ngpt with --parameterization paper, "
                    + "\(GPTModel.recipe.learningRateRule) for gpt)")
        )
    }

    /// Flags, JSON settings and the stored config all go through the one table.
    @Test func everyKeyParsesAsAFlagAndRoundTripsThroughJSON() throws {
        var config = TrainConfig()
        let flags = [
            "--model", "ngpt", "--parameterization", "nu", "--layers", "3", "--dim", "64", "--heads", "2",
            "--mlp-hidden", "100", "--context", "32",
            "--vocab-size", "512", "--corpus", "a.txt", "--data-dir", "d", "--tokenizer", "t.model", "--batch-size",
            "2",
            "--grad-accum", "3", "--steps", "50", "--lr=0.01", "--min-lr", "0.001", "--warmup", "5", "--weight-decay",
            "0.2",
            "--grad-clip", "0.5", "--seed", "7", "--precision", "fp32", "--eval-every", "10", "--eval-windows", "8",
            "--sample-tokens", "4",
            "--log-every", "2", "--out", "o", "--threads", "1", "--text-field", "content", "--val-tokens", "5000",
            "--tokenizer-sample-mb", "16", "--init-from", "base-run", "--tokenizer-type", "unigram", "--shard-tokens",
            "1000",
        ]
        let settings = try Settings.fromFlags(flags)
        #expect(Set(settings.names) == Set(TrainingKey.all.map(\.name)), "a key without a flag in this test")
        try config.apply(settings, source: "flags")
        #expect(
            config.model.kind == .ngpt && config.model.parameterization == .nu && config.model.mlpHidden == 100
                && config.schedule.lr == 0.01
                && config.schedule.warmup == 5
                && config.output.directory == "o")
        #expect(
            config.data.textField == "content" && config.data.validationTokens == 5000
                && config.data.tokenizer.sampleBytes == 16_000_000
                && config.data.tokenizer.modelType == .unigram && config.data.shardTokens == 1000
                && config.initFrom == "base-run")
        #expect(try TrainConfig.fromJSON(config.json()) == config)
        let unknown = #expect(throws: UserError.self) { try Settings.fromFlags(["--stpes", "3"]) }
        #expect(unknown?.message.contains("did you mean --steps?") == true)
        #expect(throws: UserError.self) { try Settings.fromFlags(["--steps", "ten"]) }
        #expect(throws: UserError.self) { try Settings.fromFlags(["--steps"]) }
    }

    /// Every executable reports a user error the same way: one line, `error: …`, exit status 1.
    @Test(arguments: [
        ["ngpt-train", "--steps", "0", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-sample", "--checkpoint", "/nonexistent/run"],
        ["ngpt-inspect", "/nonexistent/run"],
        ["ngpt-export", "/nonexistent/run", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-serve", "--checkpoint", "/nonexistent/run"],
        ["ngpt-serve", "--checkpoint", "/nonexistent/run", "--port", "0"],
        ["ngpt-plot", "/nonexistent/run", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-compare", "--preset", "tiny", "--lr", "0.1", "--dir", "/tmp/ngpt-help-test-compare"],
        ["ngpt-compare", "--preset", "tiny", "--dir", "/etc/passwd"],
        ["ngpt-train", "--steps", "1", "--out", "/etc/passwd/sub"],
        ["ngpt-train", "--steps", "-5", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-train", "--dim", "65", "--heads", "2", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-train", "--context", "30000", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-train", "--precision", "fp16", "--out", "/tmp/ngpt-help-test-never-created"],
        // sizes that used to trap or exhaust memory before the memory estimate ran (issue 21)
        ["ngpt-train", "--layers", "4611686018427387904", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-train", "--layers", "1000000000", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-train", "--mlp-hidden", "4611686018427387904", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-train", "--dim", "1099511627776", "--heads", "2", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-train", "--context", "4611686018427387904", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-train", "--batch-size", "4611686018427387904", "--out", "/tmp/ngpt-help-test-never-created"],
        [
            "ngpt-train", "--steps", "4611686018427387904", "--batch-size", "64", "--out",
            "/tmp/ngpt-help-test-never-created",
        ],
        // range and parse errors of the argument parser: one line and exit 1 too
        ["ngpt-train", "--stop-after", "-1", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-train", "prepare", "--shard-tokens", "0"],
        ["ngpt-train", "prepare", "--context", "abc"],
        ["ngpt-sample", "--checkpoint", "x", "--temperature", "nan"],
        ["ngpt-sample", "--checkpoint", "x", "--stop", ""],
        ["ngpt-sample", "--checkpoint", "x", "--top-p", "2"],
        ["ngpt-inspect", "x", "--max-tokens", "0"],
        ["ngpt-compare", "--seeds", "1,,2", "--dir", "/tmp/ngpt-help-test-compare"],
        // files that are not regular files
        ["ngpt-train", "--resume", "/dev/null"],
        ["ngpt-train", "--config", "/dev/zero", "--out", "/tmp/ngpt-help-test-never-created"],
        ["ngpt-sample", "--checkpoint", "/dev/zero"],
        ["ngpt-inspect", "/dev/null"],
    ])
    func userErrorsAreOneLine(command: [String]) throws {
        let (status, _, err) = try runProcess([productsDirectory() + "/" + command[0]] + command.dropFirst())
        let lines = err.split(separator: "\n").filter { !$0.contains("thread budget") }  // the start-up line
        #expect(status == 1, "\(err)")
        #expect(lines.count == 1 && lines[0].hasPrefix("error: "), "\(err)")
        #expect(!err.contains("NSCocoaErrorDomain") && !err.contains("Missing value"), "\(err)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/ngpt-help-test-never-created"))
    }

    /// What the messages say, where they used to mislead.
    /// `--both` runs each model with its own parameterization (a GPT has only the paper's).
    @Test func benchRunsBothModels() throws {
        let (status, out, err) = try runProcess([
            productsDirectory() + "/ngpt-bench", "sample", "--both", "--precisions", "bf16,fp32", "--repetitions", "1",
            "--dim", "32", "--heads", "2", "--mlp-hidden", "48", "--context", "16", "--vocab-size", "64",
            "--layers", "1",
        ])
        #expect(status == 0, "\(err)")
        #expect(out.contains("ngpt") && out.contains("gpt"))
    }

    @Test func messagesSayWhatToDo() throws {
        func error(_ args: [String]) throws -> String {
            try runProcess([productsDirectory() + "/" + args[0]] + args.dropFirst()).2
        }
        #expect(
            try error(["ngpt-train", "--steps", "-5", "--out", "/tmp/ngpt-x"]).contains(
                "--steps must be positive, got -5"))
        let odd = try error(["ngpt-train", "--dim", "65", "--heads", "2", "--out", "/tmp/ngpt-x"])
        #expect(odd.contains("--dim 65 is odd") && odd.contains("64 or 66"))
        #expect(
            try error(["ngpt-train", "--dim", "64", "--heads", "3", "--out", "/tmp/ngpt-x"]).contains("e.g. --heads 2"))
        #expect(try error(["ngpt-train", "--context", "30000", "--out", "/tmp/ngpt-x"]).contains("is available"))
        #expect(
            try error(["ngpt-sample", "--checkpoint", "x", "--max-tokens", "-5"]).contains(
                "--max-tokens must be ≥ 1, got -5"))
        #expect(try error(["ngpt-compare", "--dir", "/etc/passwd"]).contains("cannot create directory /etc/passwd"))
        #expect(
            try error(["ngpt-train", "--resume", "/dev/null"]).contains("--resume /dev/null is not a run directory"))
        #expect(
            try error(["ngpt-train", "--layers", "1000000000", "--out", "/tmp/ngpt-x"]).contains(
                "--layers 1000000000 is too large (at most 4096)"))
        #expect(
            try error(["ngpt-sample", "--checkpoint", "/dev/zero"]).contains(
                "is a character device, not a regular file"))
        #expect(try error(["ngpt-compare", "--seeds", "1,,2"]).contains("--seeds must be a comma-separated list"))
        // an unknown flag alone also shows the usage
        let unknown = try runProcess([productsDirectory() + "/ngpt-sample", "--checkpoint", "x", "--bogus", "1"])
        #expect(
            unknown.0 == 1 && unknown.2.hasPrefix("error: Unknown option '--bogus'") && unknown.2.contains("Usage:"),
            "\(unknown.2)")
    }

    /// `--config` is read strictly: a key given twice and a number out of range are named, with the file.
    @Test func configFilesAreReadStrictly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ngpt-config-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (text, message) in [
            ("{\"steps\": 1e400}", "the number 1e400 is out of range"),
            ("{\"steps\": 10, \"steps\": 20}", "the key \"steps\" appears twice"),
            ("[1, 2]", "is not a JSON object of settings"),
        ] {
            let path = dir + "/c.json"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let (status, _, err) = try runProcess([
                productsDirectory() + "/ngpt-train", "--config", path, "--out", dir + "/never",
            ])
            #expect(status == 1 && err.contains(message) && err.contains(path), "\(err)")
        }
    }
}
