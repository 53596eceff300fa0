import Common
import Foundation
import Kernels
import Testing

@testable import Training

@Suite struct CurveAnalysisTests {
    let gpt = Curve(steps: [100, 200, 300, 400], losses: [5.0, 4.5, 4.2, 4.0], seconds: [10, 20, 30, 40])

    @Test func stepsToTargetInterpolateBetweenEvaluations() {
        let ngpt = Curve(steps: [100, 200, 300, 400], losses: [4.8, 4.1, 3.9, 3.8], seconds: [12, 24, 36, 48])
        // 4.0 is reached between 200 (4.1) and 300 (3.9): halfway → 250
        #expect(abs((ngpt.firstStep(reaching: 4.0) ?? 0) - 250) < 1e-9)
        #expect(ngpt.firstStep(reaching: 5.0) == 100)  // already below at the first evaluation
        #expect(ngpt.firstStep(reaching: 3.0) == nil)
        let r = SeedResult.analyse(seed: 1, baseline: gpt, arm: ngpt, budget: 400)
        #expect(
            abs((r.armStepsToTarget ?? 0) - 250) < 1e-9 && abs((r.speedup ?? 0) - 1.6) < 1e-12 && r.reverseRatio == nil
        )
        // wall-clock: 1.6 × (0.1 s/step GPT ÷ 0.12 s/step nGPT)
        #expect(abs((r.wallClockSpeedup ?? 0) - 1.6 * 0.1 / 0.12) < 1e-12)
    }

    /// One lucky evaluation below the target does not make the robust step: s_stay starts after the last one above.
    @Test func stayingBelowIgnoresALuckyDip() {
        let arm = Curve(
            steps: [100, 200, 300, 400, 500], losses: [4.5, 3.95, 4.1, 3.9, 3.8], seconds: [1, 2, 3, 4, 5])
        #expect(abs((arm.firstStep(reaching: 4.0) ?? 0) - 190.909090909) < 1e-6)  // the dip at 200
        #expect(abs((arm.stepStayingBelow(4.0) ?? 0) - 350) < 1e-9)  // 4.1 at 300 → 3.9 at 400: crosses at 350
        #expect(arm.stepStayingBelow(5.0) == 100 && arm.stepStayingBelow(3.0) == nil)
        let r = SeedResult.analyse(
            seed: 1, baseline: Curve(steps: [500], losses: [4.0], seconds: [5]), arm: arm, budget: 500)
        #expect(abs((r.stableSpeedup ?? 0) - 500.0 / 350) < 1e-9 && (r.speedup ?? 0) > (r.stableSpeedup ?? 0))
    }

    /// The built-in arms: ngpt-nu is nGPT with the νGPT parameterization, named νGPT in reports, also as the KIND
    /// of a custom arm.
    @Test func builtInArms() throws {
        let nu = try #require(CompareArm.builtIn("ngpt-nu", learningRates: [5e-3]))
        #expect(nu.kind == .ngpt && nu.overrides["parameterization"] == "nu" && nu.displayName == "νGPT")
        let custom = try CompareArm.parse("nu-warm:ngpt-nu:4e-3:warmup=10")
        #expect(custom.overrides == ["parameterization": "nu", "warmup": 10] && custom.displayName == "nu-warm")
        #expect(CompareArm.builtIn("transformer") == nil)
    }

    @Test func reverseCaseWhenNGPTNeverGetsThere() {
        let ngpt = Curve(steps: [100, 200, 300, 400], losses: [5.2, 4.8, 4.5, 4.35], seconds: [10, 20, 30, 40])
        let r = SeedResult.analyse(seed: 2, baseline: gpt, arm: ngpt, budget: 400)
        #expect(r.speedup == nil)
        // GPT reached nGPT's final 4.35 between 200 (4.5) and 300 (4.2): at 250 → 250/400
        #expect(abs((r.reverseRatio ?? 0) - 0.625) < 1e-12)
    }

    @Test func verdicts() {
        func verdict(_ gpt: [Double], _ ngpt: [Double]) -> String {
            Verdict.text(baseline: "GPT", gpt, arm: "nGPT", ngpt)
        }
        #expect(verdict([4.0, 4.1], [3.8, 3.9]).hasPrefix("nGPT is better"))
        #expect(verdict([3.8, 3.9], [4.0, 4.1]).hasPrefix("GPT is better"))
        #expect(verdict([4.0, 4.2], [4.1, 4.3]).hasPrefix("no clear difference"))
        #expect(verdict([4.0], [3.0]).contains("only one seed"))
    }

    @Test func ladderInterpolatesInLogBudget() {
        // finals 4.4 at 100, 4.0 at 400: target 4.2 → halfway in log → budget 200 → speedup 400/200
        let s = ladderSpeedup(budgets: [100, 400], finals: [4.4, 4.0], target: 4.2, fullBudget: 400)
        #expect(abs((s ?? 0) - 2) < 1e-9)
        #expect(ladderSpeedup(budgets: [100, 400], finals: [4.4, 4.3], target: 4.2, fullBudget: 400) == nil)
    }

    @Test func spread() {
        let s = Spread([1, 2, 3])
        #expect(s?.mean == 2 && s?.min == 1 && s?.max == 3 && s?.std == 1 && s?.count == 3)
        #expect(Spread([]) == nil)
    }
}

@Suite(.serialized) struct CompareEndToEndTests {
    /// A tiny comparison in CI: report, summary.json and plots are produced; repeating the command reuses the runs.
    @Test func tinyComparisonWritesItsOutputsAndResumes() throws {
        let dir = Fixture.newDir("compare")
        let training: Settings = [
            "layers": 1, "dim": 32, "heads": 2, "mlp-hidden": 48, "context": 32, "vocab-size": 300,
            "batch-size": 4, "steps": 12, "eval-every": 4, "eval-windows": 4, "sample-tokens": 0,
            "corpus": .string(Fixture.root + "/corpus"), "data-dir": .string(Fixture.root + "/data"), "threads": 1,
        ]
        let options = CompareOptions(
            directory: dir, seeds: [1, 2], gptLRs: [3e-3, 6e-3], ngptLRs: [6e-3], ladder: [0.5],
            training: training, command: "ngpt-compare (test)")
        let summary = try CompareRunner(options: options, printer: ProgressPrinter(isTerminal: false)).run()
        let ngpt = try #require(summary.contenders.first)
        #expect(
            summary.arms.count == 2 && summary.baseline == "gpt" && ngpt.perSeed.count == 2
                && summary.lrSweep.count == 3 && summary.arms.map(\.runs.count) == [2, 2] && ngpt.ladder.count == 2)
        #expect(summary.budgetSteps == 12 && summary.tokensSeen == 12 * 4 * 32)
        // two rates: the kept one is at an end of the grid, and the report says so; one rate is no grid
        #expect(summary.arms[0].gridEdge?.contains("of its grid") == true && summary.arms[1].gridEdge == nil)
        for file in ["report.md", "summary.json", "loss-vs-step.svg", "loss-vs-time.svg"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/" + file), "\(file)")
        }
        // summary.json schema: the keys a reader relies on
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json")))
            as? [String: Any]
        for key in [
            "budgetSteps", "tokensPerStep", "seeds", "baseline", "arms", "lrSweep", "secondsTotal", "machine", "date",
            "command",
        ] {
            #expect(json?[key] != nil, "summary.json lacks \(key)")
        }
        let arms = json?["arms"] as? [[String: Any]]
        for key in ["name", "kind", "lr", "runs", "finalLoss", "perSeed", "ladder"] {
            #expect(arms?.last?[key] != nil, "summary.json's arms lack \(key)")
        }
        let perSeed = arms?.last?["perSeed"] as? [[String: Any]]
        #expect(perSeed?.first?["baselineFinal"] is Double && perSeed?.first?["seed"] as? Int == 1)
        let report = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        #expect(report.contains("**Verdict (nGPT):**") && report.contains("| seed | GPT final | nGPT final"))
        #expect(report.contains("**Not bracketed:** GPT's best learning rate"))
        // Repeating the command reuses every finished run (nothing is retrained: metrics files are untouched).
        let metrics = dir + "/runs/gpt-lr0.003-seed1/metrics.jsonl"
        let before = try Data(contentsOf: URL(fileURLWithPath: metrics))
        let again = try CompareRunner(options: options, printer: ProgressPrinter(isTerminal: false)).run()
        #expect(try Data(contentsOf: URL(fileURLWithPath: metrics)) == before)
        #expect(again.arms.map(\.perSeed) == summary.arms.map(\.perSeed))
        // A finished run whose metrics are lost or damaged is trained again: never a NaN in the summary.
        try Data().write(to: URL(fileURLWithPath: metrics))
        try Data("{\"type\": \"ev".utf8).write(to: URL(fileURLWithPath: dir + "/runs/ngpt-lr0.006-seed2/metrics.jsonl"))
        let repaired = try CompareRunner(options: options, printer: ProgressPrinter(isTerminal: false)).run()
        #expect(repaired.arms[1].perSeed.map(\.baselineFinal) == summary.arms[1].perSeed.map(\.baselineFinal))
        #expect(repaired.arms[1].perSeed.map(\.armFinal) == summary.arms[1].perSeed.map(\.armFinal))
        #expect(repaired.lrSweep.allSatisfy { $0.finalValLoss.isFinite })
        #expect(try Curve.read(metrics: metrics).isComplete(through: 12))
    }

    /// Any number of arms: a third arm (a recipe variant of nGPT) is compared by naming it; the report, the summary
    /// and the plots hold every arm.
    @Test func threeArmsAreComparedWithTheBaseline() throws {
        let dir = Fixture.newDir("compare3")
        let training: Settings = [
            "layers": 1, "dim": 32, "heads": 2, "mlp-hidden": 48, "context": 32, "vocab-size": 300,
            "batch-size": 4, "steps": 8, "eval-every": 4, "eval-windows": 4, "sample-tokens": 0,
            "corpus": .string(Fixture.root + "/corpus"), "data-dir": .string(Fixture.root + "/data"), "threads": 1,
        ]
        let arms = [
            CompareArm(kind: .gpt, learningRates: [6e-3]), CompareArm(kind: .ngpt, learningRates: [3e-2]),
            try CompareArm.parse("ngpt-warm:ngpt:3e-2:warmup=4"),
        ]
        let options = CompareOptions(
            directory: dir, seeds: [1], arms: arms, ladder: [], training: training, command: "ngpt-compare (test)")
        let summary = try CompareRunner(options: options, printer: ProgressPrinter(isTerminal: false)).run()
        #expect(summary.arms.map(\.name) == ["gpt", "ngpt", "ngpt-warm"])
        #expect(summary.contenders.allSatisfy { $0.perSeed.count == 1 && $0.verdict != nil })
        #expect(summary.arms[0].perSeed.isEmpty && summary.arms[0].verdict == nil)
        // the variant really ran with its override, in its own directory
        let config = try String(contentsOfFile: dir + "/runs/ngpt-warm-lr0.03-seed1/config.json", encoding: .utf8)
        #expect(config.contains("\"warmup\" : 4"), "\(config)")
        let report = try String(contentsOfFile: dir + "/report.md", encoding: .utf8)
        #expect(report.contains("| seed | GPT final | ngpt-warm final") && report.contains("**Verdict (ngpt-warm):**"))
        let svg = try String(contentsOfFile: dir + "/loss-vs-step.svg", encoding: .utf8)
        #expect(CompareReport.palette.prefix(3).allSatisfy { svg.contains($0) })
        // arms that cannot be compared are refused
        #expect(throws: UserError.self) { _ = try CompareArm.parse("x:transformer:1e-3") }
        #expect(throws: UserError.self) { _ = try CompareArm.parse("x:ngpt:fast") }
        let sharedKey = try CompareArm.parse("x:ngpt:1e-3:steps=10")  // a valid key, but every run shares it
        for bad in [[arms[0], sharedKey], [arms[0]], [arms[0], arms[0]]] {
            let options = CompareOptions(
                directory: dir, seeds: [1], arms: bad, ladder: [], training: training, command: "")
            #expect(throws: UserError.self) { _ = try CompareRunner(options: options) }
        }
    }

    @Test func perArmKeysAreRefused() {
        let options = CompareOptions(
            directory: Fixture.newDir("bad"), seeds: [1], gptLRs: [1e-3], ngptLRs: [1e-3], ladder: [],
            training: ["lr": 0.1], command: "")
        #expect(throws: UserError.self) { _ = try CompareRunner(options: options) }
    }
}
