import Common
import Foundation
import NGPT

/// One arm of a comparison: a model kind with its own learning-rate grid and, optionally, recipe overrides (any
/// schedule key of ngpt-train, e.g. `warmup` or `weight-decay`). Its runs are named after `name`, so two arms of
/// one kind (a recipe variant) live side by side.
public struct CompareArm: Sendable {
    public var name: String
    public var kind: ModelKind
    public var learningRates: [Double]
    /// Settings of this arm's runs on top of the shared training settings (schedule keys only).
    public var overrides: Settings

    public init(name: String? = nil, kind: ModelKind, learningRates: [Double], overrides: Settings = [:]) {
        self.name = name ?? kind.rawValue
        self.kind = kind
        self.learningRates = learningRates
        self.overrides = overrides
    }

    /// How reports name the arm: the model's display name for a plain arm ("nGPT"), "νGPT" for the built-in
    /// ngpt-nu, else its own name.
    public var displayName: String {
        name == kind.rawValue ? kind.displayName : name == "ngpt-nu" && isNu ? "νGPT" : name
    }

    var isNu: Bool { overrides["parameterization"] == .string(Parameterization.nu.rawValue) }

    /// The arms `--arms` and `--arm NAME:KIND:…` know by name: gpt, ngpt (the paper's parameterization) and ngpt-nu
    /// (νGPT, design §4.5), each at the given learning rates.
    public static func builtIn(_ name: String, learningRates: [Double] = []) -> CompareArm? {
        switch name {
        case "gpt": CompareArm(kind: .gpt, learningRates: learningRates)
        case "ngpt":
            CompareArm(
                kind: .ngpt, learningRates: learningRates,
                overrides: ["parameterization": .string(Parameterization.paper.rawValue)])
        case "ngpt-nu":
            CompareArm(
                name: name, kind: .ngpt, learningRates: learningRates,
                overrides: ["parameterization": .string(Parameterization.nu.rawValue)])
        default: nil
        }
    }
    public static let builtInNames = ["gpt", "ngpt", "ngpt-nu"]

    /// Keys an arm may not override: they must be the same for every run, or the comparison chooses them.
    static let sharedKeys: Set<String> = [
        "model", "lr", "seed", "out", "steps", "corpus", "data-dir", "tokenizer",
        "text-field", "val-tokens", "tokenizer-sample-mb", "batch-size",
        "grad-accum", "eval-every", "eval-windows", "init-from",
    ]

    /// Parses `NAME:KIND:LR[,LR…][:KEY=VALUE,…]`, e.g. `gpt-nowd:gpt:1.5e-3,3e-3:weight-decay=0`.
    public static func parse(_ text: String) throws -> CompareArm {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let usage = "--arm \(text): expected NAME:KIND:LR[,LR…][:KEY=VALUE,…] (e.g. ngpt-short:ngpt:8e-3:warmup=20)"
        guard parts.count == 3 || parts.count == 4, !parts[0].isEmpty else { throw UserError(usage) }
        guard parts[0].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw UserError("--arm \(text): the name \(parts[0]) may hold letters, digits, '-', '_' and '.' only")
        }
        guard let base = builtIn(parts[1]) else {
            throw UserError(
                "--arm \(text): unknown model kind \(parts[1]) (\(builtInNames.joined(separator: ", ")))")
        }
        let rates = try learningRateList(parts[2], flag: "--arm \(parts[0])")
        var overrides: Settings = [:]
        if parts.count == 4 {
            var flags: [String] = []
            for pair in parts[3].split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { throw UserError(usage) }
                flags += ["--" + kv[0], kv[1]]
            }
            overrides = try Settings.fromFlags(flags)
        }
        return CompareArm(
            name: parts[0], kind: base.kind, learningRates: rates, overrides: base.overrides.merging(overrides))
    }

    /// A comma-separated list of distinct positive learning rates.
    public static func learningRateList(_ s: String, flag: String) throws -> [Double] {
        let values = s.split(separator: ",", omittingEmptySubsequences: false).map {
            Double($0.trimmingCharacters(in: .whitespaces))
        }
        guard values.allSatisfy({ $0 != nil && $0! > 0 && $0!.isFinite }) else {
            throw UserError("\(flag) must be a comma-separated list of positive numbers, got \(s)")
        }
        let numbers = values.compactMap { $0 }
        guard Set(numbers).count == numbers.count else { throw UserError("\(flag) lists a value twice: \(s)") }
        return numbers
    }
}

/// What `ngpt-compare` runs: every arm on identical data, tokenizer, batch, context, budget and validation windows,
/// each with its own recipe and learning rate. The first arm is the baseline every other arm is measured against.
public struct CompareOptions: Sendable {
    public var directory: String
    public var seeds: [Int]
    public var arms: [CompareArm]
    /// Fractions of the step budget at which every arm but the baseline also trains with its own full schedule
    /// (the budget ladder).
    public var ladder: [Double]
    /// Training settings shared by every run (the keys of ngpt-train's flags).
    public var training: Settings
    public var command: String

    public init(
        directory: String, seeds: [Int], arms: [CompareArm], ladder: [Double], training: Settings,
        command: String
    ) {
        self.directory = directory; self.seeds = seeds; self.arms = arms; self.ladder = ladder
        self.training = training; self.command = command
    }

    /// The two-arm comparison: GPT (the baseline) and nGPT with the paper's parameterization, each with its
    /// learning-rate grid.
    public init(
        directory: String, seeds: [Int], gptLRs: [Double], ngptLRs: [Double], ladder: [Double], training: Settings,
        command: String
    ) {
        self.init(
            directory: directory, seeds: seeds,
            arms: [
                CompareArm.builtIn("gpt", learningRates: gptLRs)!, CompareArm.builtIn("ngpt", learningRates: ngptLRs)!,
            ],
            ladder: ladder, training: training, command: command)
    }

    public var baseline: CompareArm { arms[0] }

    /// Refuses what cannot be compared: no seed, fewer than two arms, two arms of one name, an arm without learning
    /// rates, per-arm keys among the shared settings, shared keys among an arm's overrides.
    func validate() throws {
        guard !seeds.isEmpty else { throw UserError("--seeds needs at least one seed") }
        guard arms.count >= 2 else { throw UserError("a comparison needs at least two arms, got \(arms.count)") }
        guard Set(arms.map(\.name)).count == arms.count else {
            throw UserError("two arms share a name (\(arms.map(\.name).joined(separator: ", "))); name each once")
        }
        for arm in arms where arm.learningRates.isEmpty {
            throw UserError("the arm \(arm.name) needs at least one learning rate")
        }
        for k in ["model", "parameterization", "lr", "seed", "out", "warmup", "weight-decay", "min-lr"]
        where training[k] != nil {
            throw UserError("--\(k) is chosen per arm by ngpt-compare; leave it out")
        }
        for arm in arms {
            for k in arm.overrides.names where CompareArm.sharedKeys.contains(k) {
                throw UserError("--arm \(arm.name) sets \(k), which every run of a comparison shares; set it once")
            }
        }
    }
}

/// One run of the plan: an arm at a learning rate and seed, over the full budget or (`steps` > 0) a ladder rung.
struct PlannedRun: Hashable {
    let arm: String
    let lr: Double
    let seed: Int
    let steps: Int
    var name: String { "\(arm)-lr\(lr)-seed\(seed)" + (steps == 0 ? "" : "-steps\(steps)") }
}

/// The order in which a comparison trains: (1) every arm's learning rates on the first seed; (2) the other seeds at
/// each arm's best rate; (3) the ladder rungs of every arm but the baseline, at its best rate.
enum ComparePlan {
    static func learningRateSweep(_ o: CompareOptions) -> [PlannedRun] {
        o.arms.flatMap { arm in arm.learningRates.map { PlannedRun(arm: arm.name, lr: $0, seed: o.seeds[0], steps: 0) }
        }
    }

    static func laterRuns(_ o: CompareOptions, best: [String: Double], budget: Int) -> [PlannedRun] {
        var plan = o.seeds.dropFirst().flatMap { seed in
            o.arms.map { PlannedRun(arm: $0.name, lr: best[$0.name] ?? $0.learningRates[0], seed: seed, steps: 0) }
        }
        plan += o.seeds.flatMap { seed in
            o.arms.dropFirst().flatMap { ladder(o, arm: $0, best: best, seed: seed, budget: budget) }
        }
        return plan
    }

    static func ladder(_ o: CompareOptions, arm: CompareArm, best: [String: Double], seed: Int, budget: Int)
        -> [PlannedRun]
    {
        o.ladder.map {
            PlannedRun(
                arm: arm.name, lr: best[arm.name] ?? arm.learningRates[0], seed: seed,
                steps: max(1, Int((Double(budget) * $0).rounded())))
        }
    }
}
