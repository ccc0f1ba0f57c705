public class Main {
    static boolean isValidIsbn13(String isbn) {
        String digits = isbn.replaceAll("[- ]", "");
        if (digits.length() != 13 || !digits.chars().allMatch(Character::isDigit)) {
            return false;
        }
        int sum = 0;
        for (int i = 0; i < 13; i++) {
            int d = digits.charAt(i) - '0';
            sum += (i % 2 == 0) ? d : 3 * d;
        }
        return sum % 10 == 0;
    }

    public static void main(String[] args) {
        String[] isbns = {"978-0596528126", "978-0596528120", "978-1788399081", "978-1788399083"};
        int bad = 0;
        for (String isbn : isbns) {
            boolean ok = isValidIsbn13(isbn);
            System.out.println(isbn + ": " + (ok ? "good" : "bad"));
            if (!ok) {
                bad++;
            }
        }
        if (bad > 0) {
            System.out.println(bad + " bad ISBN(s)");
            System.exit(3);
        }
    }
}
