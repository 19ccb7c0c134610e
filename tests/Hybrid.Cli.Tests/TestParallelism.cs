// The CLI writes to the process-wide Console, and some tests capture it (Console.SetOut) to check what a command
// printed: test classes running in parallel would write into each other's captures. So this assembly runs serially.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
