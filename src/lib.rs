//! Integration tests, benchmarks and examples live in tests/, benches/ and examples/.
