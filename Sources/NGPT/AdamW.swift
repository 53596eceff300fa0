import Kernels

/// AdamW over a model's flat parameters with global-norm clipping (the design §6 recipes): the two moments share
/// the parameter layout; weight decay applies only to tensors whose spec says so (and only when > 0).
public final class AdamW {
    public struct Settings: Sendable, Equatable, Codable {
        public var beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8
        public var weightDecay: Float
        /// Global gradient-norm clip; 0 disables.
        public var clipNorm: Double = 1.0
        public init(
            weightDecay: Float, clipNorm: Double = 1.0, beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8
        ) {
            self.weightDecay = weightDecay; self.clipNorm = clipNorm; self.beta1 = beta1; self.beta2 = beta2
            self.eps = eps
        }
    }

    public let settings: Settings
    /// Each tensor's learning-rate multiplier, in layout order (`Recipe.multipliers`; all 1 but in νGPT).
    public let multipliers: [Float]
    public let m: FlatTensors, v: FlatTensors
    /// Optimiser steps taken so far (Adam's bias correction uses step + 1 for the next one).
    public var step: Int = 0

    public init(layout: ParameterLayout, settings: Settings, multipliers: [Float]? = nil) {
        self.settings = settings
        self.multipliers = multipliers ?? Array(repeating: 1, count: layout.tensors.count)
        precondition(self.multipliers.count == layout.tensors.count, "one multiplier per tensor")
        m = FlatTensors(layout: layout)
        v = FlatTensors(layout: layout)
    }

    public struct StepStats: Sendable {
        /// Global gradient norm before clipping.
        public var gradNorm: Double
        /// Largest |‖row‖ − 1| of a renormalised tensor after the update, before the projection (nGPT; 0 for GPT).
        public var rowNormDrift: Float
        /// False when the gradient was not finite: nothing was changed.
        public var applied: Bool
    }

    /// Clips the model's gradients to the global norm, takes one AdamW step at `lr` (times each tensor's
    /// multiplier), then lets the model project its weights (nGPT renormalisation). A non-finite gradient norm
    /// changes nothing (`applied` is false).
    @discardableResult
    public func update(_ model: LanguageModel, lr: Float) -> StepStats {
        let norm = Optimizer.globalNorm([(UnsafePointer(model.grads.pointer), model.grads.count)])
        guard norm.isFinite else { return StepStats(gradNorm: norm, rowNormDrift: 0, applied: false) }
        let clip = settings.clipNorm > 0 ? Optimizer.clipFactor(norm: norm, maxNorm: settings.clipNorm) : 1
        step += 1
        let config = Optimizer.AdamConfig(beta1: settings.beta1, beta2: settings.beta2, eps: settings.eps)
        for (t, multiplier) in zip(model.layout.tensors, multipliers) {
            Optimizer.adamW(
                param: model.params.pointer + t.offset, grad: model.grads.pointer + t.offset,
                m: m.pointer + t.offset, v: v.pointer + t.offset, count: t.count, lr: lr * multiplier,
                weightDecay: t.decay ? settings.weightDecay : 0, step: step, config: config, gradScale: clip)
        }
        let drift = model.projectWeights()
        return StepStats(gradNorm: norm, rowNormDrift: drift, applied: true)
    }
}
