import java.math.BigInteger;

public class Fibonacci {
    static BigInteger fib(int n) {
        BigInteger a = BigInteger.ZERO, b = BigInteger.ONE;
        for (int i = 0; i < n; i++) {
            BigInteger t = a.add(b);
            a = b;
            b = t;
        }
        return a;
    }

    static BigInteger factorial(int n) {
        BigInteger r = BigInteger.ONE;
        for (int i = 2; i <= n; i++) {
            r = r.multiply(BigInteger.valueOf(i));
        }
        return r;
    }

    public static void main(String[] args) {
        for (int n : new int[] {10, 50, 100, 150}) {
            System.out.printf("fib(%d) = %s%n", n, fib(n));
        }
        System.out.println("50! = " + factorial(50));
        System.out.println("2^128 = " + BigInteger.TWO.pow(128));
        BigInteger f = factorial(100);
        System.out.println("100! has " + f.toString().length() + " digits, digit sum "
                + f.toString().chars().map(c -> c - '0').sum());
    }
}
