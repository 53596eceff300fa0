import Common
import Foundation
import Kernels
import NGPT

/// One validation curve: (step, loss, training wall-clock seconds) at each evaluation.
public struct Curve: Codable, Sendable, Equatable {
    public var steps: [Int]
    public var losses: [Double]
    public var seconds: [Double]
    /// Each evaluation's standard error (`Evaluation.estimate`; nan where the run did not record it).
    public var standardErrors: [Double]
    public init(steps: [Int], losses: [Double], seconds: [Double], standardErrors: [Double]? = nil) {
        self.steps = steps; self.losses = losses; self.seconds = seconds
        self.standardErrors = standardErrors ?? Array(repeating: .nan, count: steps.count)
    }
    public var finalLoss: Double { losses.last ?? .nan }

    /// Evaluations up to `step` are all there and finite (a run's metrics.jsonl is whole).
    public func isComplete(through step: Int) -> Bool {
        steps.last == step && !losses.isEmpty && losses.allSatisfy(\.isFinite)
    }

    /// The first step at which the curve, linearly interpolated between evaluations, reaches `target` (≤), or nil.
    public func firstStep(reaching target: Double) -> Double? {
        guard let first = losses.first else { return nil }
        if first <= target { return Double(steps[0]) }
        for i in 1..<losses.count where losses[i] <= target {
            let (s0, s1) = (Double(steps[i - 1]), Double(steps[i])), (l0, l1) = (losses[i - 1], losses[i])
            return l0 == l1 ? s1 : s0 + (l0 - target) / (l0 - l1) * (s1 - s0)
        }
        return nil
    }

    /// The step after which the curve stays at or below `target` (interpolated as `firstStep` does, from the last
    /// evaluation above it), or nil when its last evaluation is above. Robust where `firstStep` is not: one lucky
    /// evaluation that dips below and comes back up does not count.
    public func stepStayingBelow(_ target: Double) -> Double? {
        guard let last = losses.indices.last(where: { losses[$0] > target }) else {
            return losses.isEmpty ? nil : Double(steps[0])
        }
        guard last + 1 < losses.count else { return nil }
        let (s0, s1) = (Double(steps[last]), Double(steps[last + 1])), (l0, l1) = (losses[last], losses[last + 1])
        return l0 == l1 ? s1 : s0 + (l0 - target) / (l0 - l1) * (s1 - s0)
    }

    /// Reads the evaluation records of a run's metrics.jsonl.
    public static func read(metrics path: String) throws -> Curve {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UserError("cannot read \(path)")
        }
        var byStep: [Int: (loss: Double, seconds: Double, error: Double)] = [:]
        for line in text.split(separator: "\n") {
            guard let r = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                r["type"] as? String == "eval",
                let step = r["step"] as? Int, let loss = r["val_loss"] as? Double
            else { continue }
            // a resumed run may repeat a step: the last wins
            byStep[step] = (loss, r["wall_s"] as? Double ?? .nan, r["val_loss_se"] as? Double ?? .nan)
        }
        let steps = byStep.keys.sorted()
        return Curve(
            steps: steps, losses: steps.map { byStep[$0]?.loss ?? .nan },
            seconds: steps.map { byStep[$0]?.seconds ?? .nan },
            standardErrors: steps.map { byStep[$0]?.error ?? .nan })
    }
}

/// The step-count comparison of one seed: when does an arm reach the baseline's final validation loss?
public struct SeedResult: Codable, Sendable, Equatable {
    public var seed: Int
    public var baselineFinal: Double, armFinal: Double
    /// Steps the arm needs to reach the baseline's final loss (nil if it never does within the budget).
    public var armStepsToTarget: Double?
    /// N / s*: > 1 means the arm needs fewer steps.
    public var speedup: Double?
    /// The step after which the arm stays at or below the baseline's final loss (`Curve.stepStayingBelow`), and
    /// N over it: the robust form of s* and the speedup.
    public var armStepsToStay: Double?
    public var stableSpeedup: Double?
    /// When the arm never reaches the baseline's final loss: the step at which the baseline reached the arm's final
    /// loss, over N (< 1: the baseline got there earlier).
    public var reverseRatio: Double?
    public var baselineSecondsPerStep: Double, armSecondsPerStep: Double
    /// Step speedup × (baseline seconds per step / arm seconds per step).
    public var wallClockSpeedup: Double?

    public static func analyse(seed: Int, baseline: Curve, arm: Curve, budget: Int) -> SeedResult {
        let target = baseline.finalLoss
        let s = arm.firstStep(reaching: target)
        var speedup: Double?, reverse: Double?
        if let s, s > 0 {
            speedup = Double(budget) / s
        } else if s == nil {
            reverse = baseline.firstStep(reaching: arm.finalLoss).map { $0 / Double(budget) }
        }
        let bSec = (baseline.seconds.last ?? .nan) / Double(max(1, baseline.steps.last ?? 1))
        let aSec = (arm.seconds.last ?? .nan) / Double(max(1, arm.steps.last ?? 1))
        let wall = speedup.map { $0 * bSec / aSec } ?? reverse.map { $0 * bSec / aSec }
        let stay = arm.stepStayingBelow(target)
        return SeedResult(
            seed: seed, baselineFinal: baseline.finalLoss, armFinal: arm.finalLoss, armStepsToTarget: s,
            speedup: speedup, armStepsToStay: stay, stableSpeedup: stay.flatMap { $0 > 0 ? Double(budget) / $0 : nil },
            reverseRatio: reverse, baselineSecondsPerStep: bSec, armSecondsPerStep: aSec, wallClockSpeedup: wall)
    }
}

/// Mean and spread of a set of values.
public struct Spread: Codable, Sendable, Equatable {
    public var mean: Double, min: Double, max: Double, std: Double, count: Int
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        count = values.count
        mean = values.reduce(0, +) / Double(values.count)
        min = values.min() ?? .nan
        max = values.max() ?? .nan
        let m = mean
        std =
            values.count > 1
            ? (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)).squareRoot() : 0
    }
}

public enum Verdict {
    /// Compares the final-loss ranges over seeds of an arm and the baseline: overlap means no difference can be
    /// claimed at this budget.
    public static func text(baseline: String, _ baselineFinals: [Double], arm: String, _ armFinals: [Double]) -> String
    {
        guard let b = Spread(baselineFinals), let a = Spread(armFinals) else { return "no finished runs" }
        if b.count < 2 || a.count < 2 {
            return "only one seed per arm: no claim about significance can be made"
        }
        func range(_ s: Spread) -> String { String(format: "%.4f–%.4f", s.min, s.max) }
        if a.max < b.min {
            return "\(arm) is better at this budget: every \(arm) seed ends below every \(baseline) seed "
                + "(\(arm) \(range(a)) vs \(baseline) \(range(b)))"
        }
        if b.max < a.min {
            return "\(baseline) is better at this budget: every \(baseline) seed ends below every \(arm) seed "
                + "(\(baseline) \(range(b)) vs \(arm) \(range(a)))"
        }
        return "no clear difference: the seed ranges of the final losses overlap (\(arm) \(range(a)), "
            + "\(baseline) \(range(b)))"
    }
}

/// The budget-ladder speedup (the paper's Figure 2 method): an arm runs at several full budgets (each with its own
/// schedule); find, by linear interpolation in log(budget), the budget b* at which its final loss equals the
/// baseline's final loss at N. Returns N / b*, or nil when the target lies outside the ladder.
public func ladderSpeedup(budgets: [Int], finals: [Double], target: Double, fullBudget: Int) -> Double? {
    let points = zip(budgets, finals).sorted { $0.0 < $1.0 }
    for i in 0..<points.count {
        if i == 0, points[0].1 <= target {
            return points[0].1 == target ? Double(fullBudget) / Double(points[0].0) : nil
        }
        if i > 0, points[i].1 <= target, points[i - 1].1 > target {
            let (b0, l0) = (log(Double(points[i - 1].0)), points[i - 1].1),
                (b1, l1) = (log(Double(points[i].0)), points[i].1)
            let b = exp(b0 + (l0 - target) / (l0 - l1) * (b1 - b0))
            return Double(fullBudget) / b
        }
    }
    return nil
}

/// The machine-readable result of a comparison (summary.json).
public struct CompareSummary: Codable, Sendable {
    public struct Run: Codable, Sendable {
        public var arm: String, lr: Double, seed: Int, steps: Int, finalValLoss: Double, secondsPerStep: Double,
            directory: String
        /// The final validation loss in bits per byte (`finalValLoss × bitsPerNat`).
        public var finalValBitsPerByte: Double = .nan
    }

    /// One arm's result: the learning rate it kept, its runs at that rate, its final losses over the seeds and,
    /// for every arm but the baseline, how it compares with the baseline seed by seed.
    public struct Arm: Codable, Sendable {
        public var name: String, kind: String, displayName: String
        public var learningRates: [Double]
        /// The learning rate with the best final validation loss on the first seed.
        public var lr: Double
        public var runs: [Run]
        public var finalLoss: Spread?
        /// Against the baseline (empty for the baseline itself).
        public var perSeed: [SeedResult]
        public var speedup: Spread?, stableSpeedup: Spread?, wallClockSpeedup: Spread?
        public var verdict: String?
        public var ladder: [Run]
        public var ladderSpeedup: Double?

        /// When the kept rate is the lowest or highest of several: the optimum may lie outside the grid.
        public var gridEdge: String? {
            guard learningRates.count > 1, let low = learningRates.min(), let high = learningRates.max(),
                lr == low || lr == high
            else { return nil }
            return "\(displayName)'s best learning rate \(lr) is the \(lr == low ? "lowest" : "highest") of its grid; "
                + "its optimum may lie \(lr == low ? "below" : "above") it (extend the grid with --arm-lr \(name)=…)"
        }
    }

    /// Bits per byte for one nat per token on the comparison's validation windows (the same for every run).
    public var bitsPerNat: Double
    /// Tokens predicted at each evaluation (windows × context), and the median standard error of a final
    /// evaluation's loss over them (`Evaluation.estimate`): the noise floor of every comparison of losses.
    public var evaluationTokens: Int
    public var evaluationStandardError: Double
    public var budgetSteps: Int
    public var tokensPerStep: Int
    public var tokensSeen: Int
    public var seeds: [Int]
    /// The arm the others are measured against (the first).
    public var baseline: String
    public var arms: [Arm]
    /// Every run of the learning-rate sweep (first seed).
    public var lrSweep: [Run]
    public var secondsTotal: Double
    public var machine: String
    public var date: String
    public var command: String

    /// The arms measured against the baseline.
    public var contenders: ArraySlice<Arm> { arms.dropFirst() }
}

extension CompareSummary {
    /// Builds the summary from the finished runs: each arm keeps the learning rate in `best`; every arm but the
    /// baseline is compared with it seed by seed (steps to reach its final loss, wall-clock, ladder, verdict).
    static func analyse(
        options o: CompareOptions, curves: [String: Curve], runs: [String: Run], best: [String: Double], budget n: Int,
        bitsPerNat: Double, tokensPerStep: Int
    ) -> (arms: [Arm], lrSweep: [Run]) {
        var runs = runs
        for (key, run) in runs { runs[key]?.finalValBitsPerByte = run.finalValLoss * bitsPerNat }
        func planned(_ arm: CompareArm, _ seed: Int, steps: Int = 0) -> PlannedRun {
            PlannedRun(arm: arm.name, lr: best[arm.name] ?? arm.learningRates[0], seed: seed, steps: steps)
        }
        let baseline = o.baseline
        var arms: [Arm] = []
        for arm in o.arms {
            let own = o.seeds.compactMap { runs[planned(arm, $0).name] }
            var result = Arm(
                name: arm.name, kind: arm.kind.rawValue, displayName: arm.displayName, learningRates: arm.learningRates,
                lr: best[arm.name] ?? arm.learningRates[0], runs: own, finalLoss: Spread(own.map(\.finalValLoss)),
                perSeed: [], speedup: nil, stableSpeedup: nil, wallClockSpeedup: nil, verdict: nil, ladder: [],
                ladderSpeedup: nil)
            if arm.name != baseline.name {
                for seed in o.seeds {
                    guard let b = curves[planned(baseline, seed).name], let a = curves[planned(arm, seed).name] else {
                        continue
                    }
                    result.perSeed.append(SeedResult.analyse(seed: seed, baseline: b, arm: a, budget: n))
                }
                result.speedup = Spread(result.perSeed.compactMap(\.speedup))
                result.stableSpeedup = Spread(result.perSeed.compactMap(\.stableSpeedup))
                result.wallClockSpeedup = Spread(result.perSeed.compactMap(\.wallClockSpeedup))
                result.verdict = Verdict.text(
                    baseline: baseline.displayName, result.perSeed.map(\.baselineFinal), arm: arm.displayName,
                    result.perSeed.map(\.armFinal))
                var ladderValues: [Double] = []
                for seed in o.seeds where !o.ladder.isEmpty {
                    let rungs = ComparePlan.ladder(o, arm: arm, best: best, seed: seed, budget: n)
                    let budgets = rungs.map(\.steps) + [n]
                    let finals =
                        rungs.map { runs[$0.name]?.finalValLoss ?? .nan }
                        + [runs[planned(arm, seed).name]?.finalValLoss ?? .nan]
                    result.ladder += rungs.compactMap { runs[$0.name] }
                    if let target = result.perSeed.first(where: { $0.seed == seed })?.baselineFinal,
                        let s = ladderSpeedup(budgets: budgets, finals: finals, target: target, fullBudget: n)
                    {
                        ladderValues.append(s)
                    }
                }
                result.ladderSpeedup =
                    ladderValues.isEmpty ? nil : ladderValues.reduce(0, +) / Double(ladderValues.count)
            }
            arms.append(result)
        }
        let sweep = ComparePlan.learningRateSweep(o).compactMap { runs[$0.name] }
        return (arms, sweep)
    }
}
