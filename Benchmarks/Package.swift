// swift-tools-version:6.1
// Micro-benchmarks for authgate's request path (issue 4). A separate package so that the root
// package, its tests and CI do not depend on the benchmark framework.
//
//   swift package --package-path Benchmarks benchmark                      # run
//   swift package --package-path Benchmarks --allow-writing-to-package-directory \
//       benchmark baseline update main                                    # record a baseline
//   swift package --package-path Benchmarks benchmark baseline compare main   # compare with it
//
// See BENCHMARKS.md at the repository root.
import PackageDescription

let package = Package(
    name: "authgate-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "authgate", path: ".."),
        // Only the malloc interposer: mallocs per operation are a headline metric here. The
        // default "RuntimeInterposer" trait (ARC counters on Linux/Swift 6.3) is left off.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.0"),
    ],
    targets: [
        .executableTarget(
            name: "GatewayBenchmarks",
            dependencies: [
                .product(name: "Gateway", package: "authgate"),
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            path: "Benchmarks/GatewayBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        )
    ]
)
