public class EchoArgs {
    public static void main(String[] args) {
        System.out.println("argc: " + args.length);
        for (int i = 0; i < args.length; i++) {
            System.out.println((i + 1) + ": [" + args[i] + "] length " + args[i].length());
        }
        System.out.println(String.join("|", args));
    }
}
