import ArgumentParser
import Common
import Foundation
import Kernels
import Tokenizer
import ToolSupport
import Training

@main
struct NGPTCompare: Tool {
    static let configuration = CommandConfiguration(
        commandName: "ngpt-compare",
        abstract:
            "Measure how many fewer steps nGPT (or any arm) needs than the baseline to reach the same validation loss.",
        discussion: """
            Every arm (by default GPT, the baseline, and nGPT; --arms names built-in ones, --arm any others) trains \
            on identical data, tokenizer, batch, context, step budget and validation windows, each with its own \
            recipe (GPT: AdamW, decay 0.1, 5 % warmup; nGPT: Adam, renormalisation; νGPT (ngpt-nu): nGPT with \
            per-group learning rates, cosine to 10 %; plus the arm's overrides) and learning rate. With several \
            learning rates per arm, they are compared on the first seed and each arm keeps its best; the other seeds \
            then run at those rates. Any other ngpt-train flag (e.g. --dim 128 --steps 2000) is passed to every run. \
            Runs go into DIR/runs; finished runs are reused when the command is repeated, so an interrupted \
            comparison continues where it stopped. Writes DIR/report.md (speedups from the first crossing and from \
            the step after which a curve stays below the target, and the evaluation's noise), DIR/summary.json and \
            the plots DIR/loss-vs-step.{svg,png}, DIR/loss-vs-time.{svg,png}.

            Presets: default (about 75 minutes on 2 cores: d 128, 4 layers, 2 heads of 64, SwiGLU 512, context 256, \
            batch 8, 1200 steps, 256 validation windows, seeds 1 and 2, learning rates GPT 1.5e-3/3e-3/6e-3, \
            nGPT 6e-3/1.2e-2/2.4e-2 and νGPT 2.5e-3/5e-3/1e-2, around each model's default rule); tiny (a \
            seconds-long smoke test). Explicit flags override the preset.
            """)

    @Option(help: "Comparison directory. (default: checkpoints/compare-<preset>)") var dir: String?
    @Option(help: "Preset: default or tiny.") var preset: String = "default"
    @Option(parsing: .unconditional, help: "Seeds, comma-separated (init and data order). (default: from the preset)")
    var seeds: String?
    @Option(
        help: ArgumentHelp(
            "The built-in arms to compare, comma-separated, the first the baseline: gpt, ngpt (the paper's "
                + "parameterization), ngpt-nu (νGPT, ngpt-train's default nGPT). (default: gpt,ngpt,ngpt-nu)"))
    var arms: String?
    @Option(
        parsing: .unconditionalSingleValue,
        help: ArgumentHelp(
            "A built-in arm's learning rates to sweep, NAME=LR,LR… (repeatable), e.g. ngpt-nu=2.5e-3,5e-3. "
                + "(default: from the preset)"))
    var armLr: [String] = []
    @Option(parsing: .unconditional, help: "GPT learning rates to sweep, comma-separated (= --arm-lr gpt=…).")
    var gptLr: String?
    @Option(parsing: .unconditional, help: "nGPT learning rates to sweep, comma-separated (= --arm-lr ngpt=…).")
    var ngptLr: String?
    @Option(
        parsing: .unconditionalSingleValue,
        help: ArgumentHelp(
            "An arm NAME:KIND:LR[,LR…][:KEY=VALUE,…] (repeatable; the first is the baseline), e.g. "
                + "ngpt-warm:ngpt:8e-3:warmup=60 (KIND gpt, ngpt or ngpt-nu). Replaces the default arms. "
                + "(default: gpt, ngpt and ngpt-nu)"))
    var arm: [String] = []
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Budget ladder: extra runs of every arm but the baseline at these fractions of --steps, e.g. N/4,N/2. "
                + "(default: none)"))
    var budgets: String?
    @Argument(parsing: .allUnrecognized, help: "ngpt-train flags passed to every run (--dim 128 --steps 2000 …).")
    var training: [String] = []

    func run() throws {
        var presetSettings: Settings = ["heads": 2, "sample-tokens": 0]
        var seedList = [1, 2], grids: [String: [Double]]
        switch preset {
        case "default":
            presetSettings = presetSettings.merging([
                "dim": 128, "layers": 4, "mlp-hidden": 512, "context": 256, "batch-size": 8, "vocab-size": 4096,
                "steps": 1200, "eval-every": 100, "eval-windows": 256, "log-every": 100,
            ])
            grids = ["gpt": [1.5e-3, 3e-3, 6e-3], "ngpt": [6e-3, 1.2e-2, 2.4e-2], "ngpt-nu": [2.5e-3, 5e-3, 1e-2]]
        case "tiny":  // the grids are the earlier 1/d default rules at d 32 (docs/lr-sweeps/), seconds-long smoke runs
            presetSettings = presetSettings.merging([
                "dim": 32, "layers": 2, "mlp-hidden": 48, "context": 32, "batch-size": 4, "vocab-size": 512,
                "steps": 30, "eval-every": 10, "eval-windows": 8, "log-every": 10,
            ])
            grids = ["gpt": [1.2e-2], "ngpt": [6.4e-2], "ngpt-nu": [5e-3]]
        default:
            throw ValidationError("--preset must be default or tiny, got \(preset)")
        }
        presetSettings = presetSettings.merging(try Settings.fromFlags(training))
        if let s = seeds { seedList = try seedsList(s) }
        if let s = gptLr { grids["gpt"] = try CompareArm.learningRateList(s, flag: "--gpt-lr") }
        if let s = ngptLr { grids["ngpt"] = try CompareArm.learningRateList(s, flag: "--ngpt-lr") }
        for entry in armLr {
            let kv = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, CompareArm.builtInNames.contains(kv[0]) else {
                throw UserError(
                    "--arm-lr \(entry): expected NAME=LR,LR… with NAME one of "
                        + CompareArm.builtInNames.joined(separator: ", "))
            }
            grids[kv[0]] = try CompareArm.learningRateList(kv[1], flag: "--arm-lr \(kv[0])")
        }
        if !arm.isEmpty && arms == nil && (gptLr != nil || ngptLr != nil || !armLr.isEmpty) {
            throw UserError(
                "--arm replaces the default arms, so --gpt-lr, --ngpt-lr and --arm-lr do not apply; give each arm its "
                    + "rates (or name built-in arms with --arms)")
        }
        let names = arms.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        for name in names ?? [] where !CompareArm.builtInNames.contains(name) {
            throw UserError("--arms: unknown arm \(name) (\(CompareArm.builtInNames.joined(separator: ", ")))")
        }
        let builtIn = (names ?? (arm.isEmpty ? ["gpt", "ngpt", "ngpt-nu"] : [])).compactMap {
            CompareArm.builtIn($0, learningRates: grids[$0] ?? [])
        }
        let compared = builtIn + (try arm.map(CompareArm.parse))
        let ladder = try budgets.map { try $0.split(separator: ",").map { try fraction(String($0)) } } ?? []
        let options = CompareOptions(
            directory: dir ?? "checkpoints/compare-\(preset)", seeds: seedList, arms: compared, ladder: ladder,
            training: presetSettings,
            command: (["ngpt-compare"] + CommandLine.arguments.dropFirst()).joined(separator: " "))
        let printer = ProgressPrinter()
        let stop = StopRequest()
        let runner = try CompareRunner(options: options, printer: printer, stop: stop)
        stop.install()
        Threads.configure(threads: runner.shared.output.threads)
        printer.line(Threads.startupLine)
        let s = try runner.run()
        printer.line("")
        for arm in s.arms { if let edge = arm.gridEdge { printer.line("note: \(edge)") } }
        let base = s.arms[0].displayName
        for arm in s.contenders {
            printer.line("\(arm.displayName): \(arm.verdict ?? "-")")
            if let sp = arm.speedup {
                printer.line(
                    String(
                        format: "  speedup N/s* over %@: %.2f (range %.2f–%.2f over %d seeds)", base, sp.mean, sp.min,
                        sp.max,
                        sp.count))
            } else {
                printer.line("  did not reach the \(base)'s final validation loss within the budget (see the report)")
            }
            if let w = arm.wallClockSpeedup { printer.line(String(format: "  wall-clock speedup: %.2f", w.mean)) }
            if let l = arm.ladderSpeedup { printer.line(String(format: "  budget-ladder speedup: %.2f", l)) }
        }
        printer.line("report: \(options.directory)/report.md (took \(formatDuration(s.secondsTotal)))")
    }

    func seedsList(_ s: String) throws -> [Int] {
        let values = s.split(separator: ",", omittingEmptySubsequences: false).map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        guard values.allSatisfy({ $0 != nil && $0! >= 0 }) else {
            throw UserError("--seeds must be a comma-separated list of integers ≥ 0, got \(s)")
        }
        let seeds = values.compactMap { $0 }
        guard Set(seeds).count == seeds.count else { throw UserError("--seeds lists a seed twice: \(s)") }
        return seeds
    }

    func fraction(_ s: String) throws -> Double {
        let t = s.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("N/"), let d = Double(t.dropFirst(2)), d > 1 { return 1 / d }
        if let v = Double(t), v > 0, v < 1 { return v }
        throw UserError("--budgets entries must be N/k (k > 1) or fractions in (0, 1), got \(t)")
    }
}
