namespace Hybrid.Cli;

internal static class Program
{
    private static int Main(string[] args)
    {
        Console.WriteLine("hybrid: not implemented yet");
        return args.Length == 0 ? 0 : 1;
    }
}
