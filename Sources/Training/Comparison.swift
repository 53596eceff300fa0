import Common
import Foundation
import Kernels
import NGPT

/// One validation curve: (step, loss, training wall-clock seconds) at each evaluation.
public struct Curve: Codable, Sendable, Equatable {
    public var steps: [Int]
    public var losses: [Double]
    public var seconds: [Double]
    public init(steps: [Int], losses: [Double], seconds: [Double]) {
        self.steps = steps; self.losses = losses; self.seconds = seconds
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

    /// Reads the evaluation records of a run's metrics.jsonl.
    public static func read(metrics path: String) throws -> Curve {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UserError("cannot read \(path)")
        }
        var byStep: [Int: (Double, Double)] = [:]
        for line in text.split(separator: "\n") {
            guard let r = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                r["type"] as? String == "eval",
                let step = r["step"] as? Int, let loss = r["val_loss"] as? Double
            else { continue }
            byStep[step] = (loss, r["wall_s"] as? Double ?? .nan)  // a resumed run may repeat a step: the last wins
        }
        let steps = byStep.keys.sorted()
        return Curve(
            steps: steps, losses: steps.map { byStep[$0]?.0 ?? .nan }, seconds: steps.map { byStep[$0]?.1 ?? .nan })
    }
}

/// The step-count comparison of one seed: when does nGPT reach the GPT arm's final validation loss?
public struct SeedResult: Codable, Sendable, Equatable {
    public var seed: Int
    public var gptFinal: Double, ngptFinal: Double
    /// Steps nGPT needs to reach the GPT's final loss (nil if it never does within the budget).
    public var ngptStepsToTarget: Double?
    /// N / s*: > 1 means nGPT needs fewer steps.
    public var speedup: Double?
    /// When nGPT never reaches the GPT's final loss: the step at which the GPT reached nGPT's final loss, over N
    /// (< 1: the GPT got there earlier).
    public var reverseRatio: Double?
    public var gptSecondsPerStep: Double, ngptSecondsPerStep: Double
    /// Step speedup × (GPT seconds per step / nGPT seconds per step).
    public var wallClockSpeedup: Double?

    public static func analyse(seed: Int, gpt: Curve, ngpt: Curve, budget: Int) -> SeedResult {
        let target = gpt.finalLoss
        let s = ngpt.firstStep(reaching: target)
        var speedup: Double?, reverse: Double?
        if let s, s > 0 {
            speedup = Double(budget) / s
        } else if s == nil {
            reverse = gpt.firstStep(reaching: ngpt.finalLoss).map { $0 / Double(budget) }
        }
        let gSec = (gpt.seconds.last ?? .nan) / Double(max(1, gpt.steps.last ?? 1))
        let nSec = (ngpt.seconds.last ?? .nan) / Double(max(1, ngpt.steps.last ?? 1))
        let wall = speedup.map { $0 * gSec / nSec } ?? reverse.map { $0 * gSec / nSec }
        return SeedResult(
            seed: seed, gptFinal: gpt.finalLoss, ngptFinal: ngpt.finalLoss, ngptStepsToTarget: s, speedup: speedup,
            reverseRatio: reverse, gptSecondsPerStep: gSec, ngptSecondsPerStep: nSec, wallClockSpeedup: wall)
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
    /// Compares the final-loss ranges over seeds: overlap means no difference can be claimed at this budget.
    public static func text(gptFinals: [Double], ngptFinals: [Double]) -> String {
        guard let g = Spread(gptFinals), let n = Spread(ngptFinals) else { return "no finished runs" }
        if g.count < 2 || n.count < 2 {
            return "only one seed per arm: no claim about significance can be made"
        }
        if n.max < g.min {
            return String(
                format:
                    "nGPT is better at this budget: every nGPT seed ends below every GPT seed (nGPT %.4f–%.4f vs "
                    + "GPT %.4f–%.4f)",
                n.min, n.max, g.min, g.max)
        }
        if g.max < n.min {
            return String(
                format:
                    "GPT is better at this budget: every GPT seed ends below every nGPT seed (GPT %.4f–%.4f vs nGPT "
                    + "%.4f–%.4f)",
                g.min, g.max, n.min, n.max)
        }
        return String(
            format: "no clear difference: the seed ranges of the final losses overlap (nGPT %.4f–%.4f, GPT %.4f–%.4f)",
            n.min, n.max, g.min, g.max)
    }
}

/// The budget-ladder speedup (the paper's Figure 2 method): nGPT runs at several full budgets (each with its own
/// schedule); find, by linear interpolation in log(budget), the budget b* at which its final loss equals the
/// GPT's final loss at N. Returns N / b*, or nil when the target lies outside the ladder.
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
