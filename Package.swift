// swift-tools-version:6.0
import PackageDescription
import Foundation

// The row kernels are explicit SIMD16 code. Swift's default x86-64 target is SSE2, which splits every 16-lane
// operation into four and makes the exp polynomial ~3× slower (swift-notes §3). Like llm.c's -march=native, the
// kernels are compiled for the CPU that builds them; set NGPT_PORTABLE=1 for a binary that runs on any x86-64.
let portable = ProcessInfo.processInfo.environment["NGPT_PORTABLE"] == "1"
var kernelFlags: [SwiftSetting] = []
#if arch(x86_64)
if !portable { kernelFlags.append(.unsafeFlags(["-target-cpu", "native"])) }
#endif

let package = Package(
    name: "ngpt",
    products: [
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "Tokenizer", targets: ["Tokenizer"]),
        .library(name: "NGPT", targets: ["NGPT"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Sampling", targets: ["Sampling"]),
        .executable(name: "ngpt-sample", targets: ["ngpt-sample"]),
        .executable(name: "ngpt-compare", targets: ["ngpt-compare"]),
        .executable(name: "ngpt-inspect", targets: ["ngpt-inspect"]),
        .executable(name: "ngpt-train", targets: ["ngpt-train"]),
        .executable(name: "ngpt-bench", targets: ["ngpt-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        // A plain C API over SentencePiece's C++ classes (every entry point catches, ids range-checked).
        .target(name: "CSentencePiece",
                linkerSettings: [.linkedLibrary("sentencepiece"), .linkedLibrary("sentencepiece_train")]),

        // Libraries
        .target(name: "Kernels", dependencies: ["CBLAS"], swiftSettings: kernelFlags),
        .target(name: "Tokenizer", dependencies: ["CSentencePiece", "Kernels"]),
        .target(name: "NGPT", dependencies: ["Kernels"]),
        .target(name: "Training", dependencies: ["Kernels", "Tokenizer", "NGPT"]),
        .target(name: "Sampling", dependencies: ["Kernels", "Tokenizer", "NGPT", "Training"]),
        .target(name: "Inspect", dependencies: ["CBLAS", "Kernels", "Tokenizer", "NGPT", "Training", "Sampling"]),

        // Executables
        .executableTarget(name: "ngpt-bench", dependencies: [
            "Kernels", "CBLAS", "NGPT", "Sampling",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "ngpt-train", dependencies: [
            "Kernels", "Tokenizer", "NGPT", "Training",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "ngpt-compare", dependencies: [
            "Kernels", "Training",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "ngpt-inspect", dependencies: [
            "Kernels", "Training", "Sampling", "Inspect",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "ngpt-sample", dependencies: [
            "Kernels", "Tokenizer", "NGPT", "Sampling",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"]),
        .testTarget(name: "CSentencePieceTests", dependencies: ["CSentencePiece"]),
        .testTarget(name: "TokenizerTests", dependencies: ["TestSupport", "Tokenizer"]),
        .testTarget(name: "NGPTTests", dependencies: ["NGPT"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TrainingTests", dependencies: ["TestSupport", "Training", "NGPT", "Tokenizer", "Kernels"]),
        .testTarget(name: "InspectTests", dependencies: ["Inspect", "Sampling", "NGPT", "Kernels"]),
        .testTarget(name: "SamplingTests", dependencies: ["TestSupport", "Sampling", "Training", "NGPT", "Tokenizer", "Kernels"],
                    resources: [.copy("Fixtures")]),
    ],
    cxxLanguageStandard: .cxx17
)
